export { OctoClient, browserSocket } from './client';
export { Connection, RequestError } from './connection';
export type { Ack, ConnectionState, OutboxItem, SocketLike, SocketFactory, LogFilter } from './connection';
export { ClientContext, useClient, useConnectionState, useHello, useOutbox } from './hooks';
