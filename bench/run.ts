// npm run bench: every benchmark, each reporting ratios against a baseline measured in the same run.
import { authOverhead } from './auth-overhead.js';

await authOverhead();
