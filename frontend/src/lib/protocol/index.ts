export * from './schema';
export { commandId } from './ids';
