export type { ArtifactSource, BlockLedger, BlockSink, PullCommonOptions, PullFileInfo, PullProgress } from './types.js';
export { createBlockServer, type BlockServer, type BlockServerOptions, type BlockServerStats } from './server.js';
export { pullFile, type PullFileOptions } from './client.js';
export { pullFileHttp, type PullFileHttpOptions } from './http.js';
export { createFileBlockSink, createMemoryBlockLedger, createMemoryBlockSink, type FileBlockSink } from './sinks.js';
export { BlockRequestSchema, MAX_BLOCKS_PER_REQUEST, type BlockRequest } from './protocol.js';
export { FRAME_MAGIC, decodeBlockFrame, encodeBlockFrame, type BlockFrameHeader } from './frame.js';
