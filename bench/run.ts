// npm run bench: every benchmark, each reporting ratios against a baseline measured in the same run.
// BENCH_ONLY=request-path|auth|observability|filesystem|scaling|capacity|audit runs one of them.
import { auditChain } from './audit-chain.js';
import { authOverhead } from './auth-overhead.js';
import { capacity } from './capacity.js';
import { filesystem } from './filesystem.js';
import { observabilityOverhead } from './observability-overhead.js';
import { requestPath } from './request-path.js';
import { scaling } from './scaling.js';

const only = process.env.BENCH_ONLY;
if (!only || only === 'request-path') await requestPath();
if (!only || only === 'auth') await authOverhead();
if (!only || only === 'observability') await observabilityOverhead();
if (!only || only === 'filesystem') await filesystem();
if (!only || only === 'scaling') await scaling();
if (!only || only === 'capacity') await capacity();
if (!only || only === 'audit') await auditChain();
