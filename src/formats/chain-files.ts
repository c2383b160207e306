/**
 * The file names of `export --chain`: the top image goes where the user
 * said, each image below it beside that as NAME.qcow2. The user named only
 * the top file, so the others never overwrite an existing file without
 * --force, and no two layers may ever share a file: the top written over a
 * lower layer's file would leave a chain backed by itself, its base gone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StrataError, badInput } from '../errors.js';
import { realTarget } from './output.js';

function exists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/** `names` bottom first, the last being the exported image; returns their files in the same order. */
export function chainFiles(names: readonly string[], top: string, force: boolean): string[] {
  const dir = path.dirname(path.resolve(top));
  const files = names.map((n, i) => (i === names.length - 1 ? path.resolve(top) : path.join(dir, `${n}.qcow2`)));
  const seen = new Map<string, number>();
  files.forEach((f, i) => {
    const real = realTarget(f);
    const other = seen.get(real);
    if (other !== undefined) {
      const out = i === names.length - 1 ? top : files[i];
      throw badInput(`${out} is also where --chain writes layer ${names[other]}; name the output differently`, { file: files[i], layer: names[other] });
    }
    seen.set(real, i);
  });
  const taken = files.slice(0, -1).flatMap((f, i) => (exists(f) ? [`${f} (layer ${names[i]})`] : []));
  if (taken.length > 0 && !force) {
    throw new StrataError('E_EXISTS', `export --chain would overwrite ${taken.join(', ')}, which it did not create; pass --force to overwrite, or export into another directory`, {
      files: taken,
    });
  }
  return files;
}
