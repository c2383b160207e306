/**
 * store/images: The catalog of images and their maps: which slot each block of each image names.
 *
 * Other folders import this wing only through this file.
 *
 *   catalog.ts         Rows of the images table:
 *   map-edit.ts        A map edit: the one place that turns changed map entries into refcounts and own-block counts.
 *   maps.ts            Segment rows of image maps.
 *   segment.ts         A map segment:
 */
export * from './catalog.js';
export * from './map-edit.js';
// Reads only: maps change through a map edit (map-edit.ts), which keeps refcounts; readers count references with ownSlotRefs.
export { loadSegment, loadSegmentOfEach, segmentsOf, segmentNumbersOf, segmentNumbersIn, ownSlotRefs } from './maps.js';
export * from './segment.js';
