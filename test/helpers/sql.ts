/**
 * The SQLite connection behind a store, for white-box tests: reading tables
 * the store keeps no function for, and corrupting a store on purpose. Store
 * code and product code never reach it this way (src/store/core/tx.ts).
 */
export { sqlOf } from '../../src/store/core/tx.js';
