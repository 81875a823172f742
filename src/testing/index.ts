/**
 * Test helpers, public API: an in-process communicator and a real-socket client.
 *
 * @module
 */
export { WebsocketCommunicator, ReceiveTimeoutError } from './communicator.js';
export type { CommunicatorOptions, ConnectResult, CommunicatorOutput } from './communicator.js';
export { connectClient, TestClient, HandshakeRefusedError } from './client.js';
export type { TestClientOptions } from './client.js';
export { listen } from '../transport/ws.js';
export type { RunningServer, ListenOptions } from '../transport/ws.js';
