import type { ToolDefinition } from '../toolkit.js';
import { directoryTree, getFileInfo, grepTool, listDirectory, searchFiles } from './browse.js';
import { describeDatabase, listDatabases, query } from './databases.js';
import { processLargeDataset } from './dataset.js';
import { readFile, readMultipleFiles } from './read.js';
import { listRoots } from './roots.js';
import { createDirectory, deleteFile, editFile, moveFile, writeFile } from './write.js';

/** Every tool mcpd serves, in the order tools/list shows them. */
export const TOOLS: readonly ToolDefinition[] = [
  listRoots,
  listDirectory,
  directoryTree,
  getFileInfo,
  readFile,
  readMultipleFiles,
  writeFile,
  editFile,
  createDirectory,
  moveFile,
  deleteFile,
  searchFiles,
  grepTool,
  processLargeDataset,
  listDatabases,
  describeDatabase,
  query,
];
