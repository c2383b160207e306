/**
 * store/images: The catalog of images and their maps: which slot each block of each image names.
 *
 * Other folders import this wing only through this file.
 *
 *   catalog.ts         Rows of the images table:
 *   maps.ts            Segment rows of image maps.
 *   segment.ts         A map segment:
 */
export * from './catalog.js';
export * from './maps.js';
export * from './segment.js';
