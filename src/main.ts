#!/usr/bin/env node
import { runFromProcess } from './cli/process.js';

await runFromProcess();
