/** Where layer i of a bench chain writes its 4 KiB (same for strata and qcow2). */
export function layerOffset(i, size) {
  const stride = Math.floor(size / 128 / 4096) * 4096;
  return i * stride + (i % 7) * 4096;
}
