import { badInput } from '../errors.js';
import type { ImageName } from './types.js';

/**
 * Names never become paths, but they do appear in NBD export lists, URLs and
 * shell commands, so only a plain character set is accepted.
 */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export function imageName(raw: string): ImageName {
  if (typeof raw !== 'string' || raw.length === 0) throw badInput('image name is empty');
  if (!NAME_RE.test(raw) || raw.includes('..')) {
    const shown = JSON.stringify(raw.length > 64 ? raw.slice(0, 64) + '…' : raw);
    throw badInput(
      `invalid image name ${shown}: use 1-128 characters from A-Z a-z 0-9 . _ + -, starting with a letter or digit, without ".."`,
      { name: raw },
    );
  }
  return raw as ImageName;
}
