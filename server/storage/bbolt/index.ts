export * from './format';
export { BboltWriter, BucketBuilder, FileSink, MemorySink, type PageSink, type WriterOptions } from './writer';
export { BboltReader, decodeBucketValue, type BboltEntry, type BucketRef } from './reader';
export { buildTree, readTree, type Tree } from './tree';
