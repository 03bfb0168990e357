import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { type IIngress, type INetworkPolicy, Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { type IPodDisruptionBudget, PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ConfigMap,
  type IConfigMap,
  type IContainer,
  type IPodTemplateSpec,
  type IService,
  Namespace,
  PersistentVolumeClaim,
  Service,
  ServiceAccount,
} from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { findCommand } from '../helpers/tools.js';
import { typeCheckFile } from '../helpers/typecheck.js';
import { REPO } from '../helpers/workspace.js';

/**
 * deploy/k8s: a kustomize base and a demo overlay. Checked without a cluster: every file parses, every
 * manifest validates against the Kubernetes OpenAPI schema (kubernetes-models) and type-checks with
 * excess-property checks (kubernetes-types), the kustomizations render (kubectl when installed, and
 * always by hand), the pod templates follow the hardening rules, and the config in the ConfigMap is
 * one mcpd accepts and agrees with the manifests around it.
 */

const K8S = join(REPO, 'deploy/k8s');
const BASE = join(K8S, 'base');
const OVERLAY = join(K8S, 'overlays/demo');
const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
/** What the hand render below implements; anything else in a kustomization fails the tests until it does. */
const SUPPORTED_KUSTOMIZE_KEYS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'configMapGenerator',
  'images',
  'labels',
]);
const CLUSTER_SCOPED = new Set(['Namespace', 'PersistentVolume', 'StorageClass', 'ClusterRole', 'ClusterRoleBinding']);

type Json = Record<string, unknown>;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}

interface Manifest {
  /** Relative to the repository, with the document index: `deploy/k8s/base/pvc.yaml#1`. */
  readonly where: string;
  readonly file: string;
  readonly doc: K8sObject;
}

interface ConfigMapGenerator {
  readonly name: string;
  readonly files?: string[];
  readonly literals?: string[];
  readonly options?: { readonly labels?: Record<string, string> };
}

interface Kustomization {
  readonly dir: string;
  readonly file: string;
  readonly resources: string[];
  readonly namespace?: string;
  readonly configMapGenerator: ConfigMapGenerator[];
  readonly images: { name: string; newName?: string; newTag?: string; digest?: string }[];
  readonly labels: {
    pairs: Record<string, string>;
    includeSelectors?: boolean;
    includeTemplates?: boolean;
  }[];
}

type ModelClass = new (data: never) => { validate(): void };

/** apiVersion + kind -> the kubernetes-models class and the kubernetes-types module. Unknown kinds fail. */
const KINDS: Record<string, { model: ModelClass; types: string }> = {
  'apps/v1 Deployment': { model: Deployment, types: 'kubernetes-types/apps/v1' },
  'v1 ConfigMap': { model: ConfigMap, types: 'kubernetes-types/core/v1' },
  'v1 Namespace': { model: Namespace, types: 'kubernetes-types/core/v1' },
  'v1 PersistentVolumeClaim': { model: PersistentVolumeClaim, types: 'kubernetes-types/core/v1' },
  'v1 Service': { model: Service, types: 'kubernetes-types/core/v1' },
  'v1 ServiceAccount': { model: ServiceAccount, types: 'kubernetes-types/core/v1' },
  'autoscaling/v2 HorizontalPodAutoscaler': {
    model: HorizontalPodAutoscaler,
    types: 'kubernetes-types/autoscaling/v2',
  },
  'policy/v1 PodDisruptionBudget': { model: PodDisruptionBudget, types: 'kubernetes-types/policy/v1' },
  'networking.k8s.io/v1 Ingress': { model: Ingress, types: 'kubernetes-types/networking/v1' },
  'networking.k8s.io/v1 NetworkPolicy': { model: NetworkPolicy, types: 'kubernetes-types/networking/v1' },
};

function kindEntry(doc: K8sObject, where: string): { model: ModelClass; types: string } {
  const entry = KINDS[`${doc.apiVersion} ${doc.kind}`];
  if (!entry) throw new Error(`${where}: unknown kind ${doc.apiVersion} ${doc.kind}; add it to KINDS in this test`);
  return entry;
}

const rel = (path: string) => relative(REPO, path);
const identity = (doc: K8sObject) => `${doc.kind}/${doc.metadata.namespace ?? ''}/${doc.metadata.name}`;
/** An object's identity before a namespace is applied: what a base and an overlay have in common. */
const kindAndName = (doc: K8sObject) => `${doc.kind}/${doc.metadata.name}`;

function yamlFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...yamlFilesUnder(path));
    else if (/\.ya?ml$/.test(entry.name) || entry.name === 'Kustomization') out.push(path);
  }
  return out.sort();
}

/** Every non-empty document of a YAML stream; any YAML error (duplicate keys included) throws. */
function documentsIn(text: string, source: string): unknown[] {
  const out: unknown[] = [];
  parseAllDocuments(text, { uniqueKeys: true }).forEach((doc, index) => {
    if (doc.errors.length > 0) {
      throw new Error(`${source}#${index}: ${doc.errors.map((error) => error.message).join('; ')}`);
    }
    const value = doc.toJS() as unknown;
    if (value !== null && value !== undefined) out.push(value);
  });
  return out;
}

const documentsOf = (file: string) => documentsIn(readFileSync(file, 'utf8'), rel(file));

function asManifest(value: unknown, where: string): K8sObject {
  const doc = value as Partial<K8sObject> | null;
  if (
    typeof doc !== 'object' ||
    doc === null ||
    typeof doc.apiVersion !== 'string' ||
    typeof doc.kind !== 'string' ||
    typeof doc.metadata?.name !== 'string'
  ) {
    throw new Error(`${where}: not a Kubernetes object (apiVersion, kind and metadata.name are required)`);
  }
  return doc as K8sObject;
}

/** The Kubernetes objects in a YAML stream; `file` is where it came from. */
function manifestsOf(values: unknown[], source: string, file: string): Manifest[] {
  return values.map((value, index) => {
    const where = `${source}#${index}`;
    return { where, file, doc: asManifest(value, where) };
  });
}

const manifestsIn = (file: string) => manifestsOf(documentsOf(file), rel(file), file);

function kustomizationFileIn(dir: string): string | undefined {
  return KUSTOMIZATION_FILES.map((name) => join(dir, name)).find((path) => existsSync(path));
}

function readKustomization(dir: string): Kustomization {
  const file = kustomizationFileIn(dir);
  if (!file) throw new Error(`${rel(dir)}: no kustomization file`);
  const [raw, ...rest] = documentsOf(file) as Json[];
  if (!raw || rest.length > 0) throw new Error(`${rel(file)}: expected exactly one document`);
  const unsupported = Object.keys(raw).filter((key) => !SUPPORTED_KUSTOMIZE_KEYS.has(key));
  if (unsupported.length > 0) {
    throw new Error(`${rel(file)}: the hand render in this test does not implement ${unsupported.join(', ')}`);
  }
  if (raw.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || raw.kind !== 'Kustomization') {
    throw new Error(`${rel(file)}: not a kustomize.config.k8s.io/v1beta1 Kustomization`);
  }
  const k: Kustomization = {
    dir,
    file,
    resources: (raw.resources as string[] | undefined) ?? [],
    configMapGenerator: (raw.configMapGenerator as Kustomization['configMapGenerator'] | undefined) ?? [],
    images: (raw.images as Kustomization['images'] | undefined) ?? [],
    labels: (raw.labels as Kustomization['labels'] | undefined) ?? [],
    ...(typeof raw.namespace === 'string' ? { namespace: raw.namespace } : {}),
  };
  for (const label of k.labels) {
    if (label.includeSelectors) throw new Error(`${rel(file)}: the hand render does not implement includeSelectors`);
  }
  return k;
}

/** A generator's `files`: `key=path` or `path`, resolved against the kustomization's directory. */
function generatorFiles(dir: string, generator: ConfigMapGenerator): { key: string; path: string }[] {
  return (generator.files ?? []).map((entry) => {
    const [key, path] = entry.includes('=') ? (entry.split('=', 2) as [string, string]) : [entry, entry];
    return { key: basename(key), path: resolve(dir, path) };
  });
}

/** Every file the generators of a kustomization read. */
const generatorSources = (k: Kustomization) => k.configMapGenerator.flatMap((g) => generatorFiles(k.dir, g));

function podTemplateOf(doc: K8sObject): IPodTemplateSpec | undefined {
  if (!['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(doc.kind)) return undefined;
  return (doc.spec as { template?: IPodTemplateSpec } | undefined)?.template;
}

function containersOf(template: IPodTemplateSpec): IContainer[] {
  return [...(template.spec?.initContainers ?? []), ...(template.spec?.containers ?? [])];
}

function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  const [withTag, digest] = image.split('@', 2) as [string, string | undefined];
  const slash = withTag.lastIndexOf('/');
  const colon = withTag.lastIndexOf(':');
  const name = colon > slash ? withTag.slice(0, colon) : withTag;
  const tag = colon > slash ? withTag.slice(colon + 1) : undefined;
  return { name, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/**
 * kustomize's build, for exactly the features the kustomizations here use: resources (files and
 * directories), configMapGenerator (without the hash suffix), labels (metadata and, with
 * includeTemplates, pod templates), images and namespace, in kustomize's order (generators, then
 * this level's transformers over everything below it).
 */
function handRender(dir: string): Manifest[] {
  const k = readKustomization(dir);
  // Freshly parsed on every call, so the transformers below may change the objects in place.
  const out: Manifest[] = [];
  for (const resource of k.resources) {
    const path = resolve(dir, resource);
    if (!existsSync(path)) throw new Error(`${rel(k.file)}: resource ${resource} does not exist`);
    out.push(...(statSync(path).isDirectory() ? handRender(path) : manifestsIn(path)));
  }
  for (const generator of k.configMapGenerator) {
    const data: Record<string, string> = {};
    for (const { key, path } of generatorFiles(dir, generator)) data[key] = readFileSync(path, 'utf8');
    for (const literal of generator.literals ?? []) {
      const [key, value] = literal.split('=', 2) as [string, string];
      data[key] = value;
    }
    out.push({
      where: `${rel(k.file)} configMapGenerator ${generator.name}`,
      file: k.file,
      doc: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: generator.name,
          ...(generator.options?.labels ? { labels: { ...generator.options.labels } } : {}),
        },
        data,
      },
    });
  }
  for (const { doc } of out) {
    const template = podTemplateOf(doc);
    for (const label of k.labels) {
      doc.metadata.labels = { ...doc.metadata.labels, ...label.pairs };
      if (template && label.includeTemplates) {
        template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...label.pairs } };
      }
    }
    for (const container of template ? containersOf(template) : []) {
      if (!container.image) continue;
      const image = splitImage(container.image);
      const rule = k.images.find((candidate) => candidate.name === image.name);
      if (!rule) continue;
      const name = rule.newName ?? image.name;
      const tag = rule.newTag ?? image.tag;
      const digest = rule.digest ?? image.digest;
      container.image = `${name}${tag && !rule.digest ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
    }
    if (k.namespace && !CLUSTER_SCOPED.has(doc.kind)) doc.metadata.namespace = k.namespace;
  }
  return out;
}

function allKustomizationDirs(): string[] {
  return yamlFilesUnder(K8S)
    .filter((file) => KUSTOMIZATION_FILES.includes(basename(file)))
    .map((file) => dirname(file));
}

/** The generator names of a kustomization and everything it includes. */
function generatorNames(dir: string): string[] {
  const k = readKustomization(dir);
  return [
    ...k.configMapGenerator.map((generator) => generator.name),
    ...k.resources
      .map((resource) => resolve(dir, resource))
      .filter((path) => statSync(path).isDirectory())
      .flatMap(generatorNames),
  ];
}

/** Every YAML file that is a Kubernetes manifest (not a kustomization, not a generator's source). */
function allManifests(): Manifest[] {
  const notManifests = new Set<string>();
  for (const dir of allKustomizationDirs()) {
    const k = readKustomization(dir);
    notManifests.add(k.file);
    for (const { path } of generatorSources(k)) notManifests.add(path);
  }
  return yamlFilesUnder(K8S)
    .filter((file) => !notManifests.has(file))
    .flatMap(manifestsIn);
}

function validateWithModels(manifests: readonly Manifest[]): string[] {
  const failures: string[] = [];
  for (const { where, doc } of manifests) {
    try {
      new (kindEntry(doc, where).model)(structuredClone(doc) as never).validate();
    } catch (error) {
      failures.push(`${where} (${doc.kind} ${doc.metadata.name}): ${(error as Error).message}`);
    }
  }
  return failures;
}

const byKind = <T>(manifests: readonly Manifest[], kind: string): T[] =>
  manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc as unknown as T);

function only<T>(items: readonly T[], what: string): T {
  if (items.length !== 1) throw new Error(`expected exactly one ${what}, found ${items.length}`);
  return items[0] as T;
}

/** The one object of `kind` called `name`. */
const named = <T>(manifests: readonly Manifest[], kind: string, name: string): T =>
  only(
    manifests.filter(({ doc }) => doc.kind === kind && doc.metadata.name === name),
    `${kind} ${name}`,
  ).doc as unknown as T;

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([key, value]) => labels?.[key] === value);

/** Kubernetes quantities as numbers (cpu in cores, memory in bytes). */
function quantity(value: string | number | undefined): number {
  if (typeof value === 'number') return value;
  const match = /^(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi)?$/.exec(value ?? '');
  if (!match) throw new Error(`not a quantity: ${String(value)}`);
  const unit = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[match[2] ?? ''] ?? 1;
  return Number(match[1]) * unit;
}

/** nginx size syntax (client_max_body_size): bytes, k, m, g. */
function nginxSize(value: string | undefined): number {
  const match = /^(\d+)([kKmMgG])?$/.exec(value ?? '');
  if (!match) throw new Error(`not an nginx size: ${String(value)}`);
  const unit = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(match[2] ?? '').toLowerCase()] ?? 1;
  return Number(match[1]) * unit;
}

function preStopDelaySeconds(container: IContainer): number {
  const preStop = container.lifecycle?.preStop;
  if (preStop?.sleep) return preStop.sleep.seconds;
  const command = preStop?.exec?.command;
  if (command?.[0] === 'sleep' && command.length === 2) return Number(command[1]);
  return 0;
}

/** Object references inside one render resolve to objects of that render; labels and images are applied. */
function assertWired(render: readonly Manifest[], label: string): void {
  const deployments = byKind<IDeployment>(render, 'Deployment');
  const exists = (kind: string | undefined, namespace: string | undefined, name: string | undefined) =>
    render.some(({ doc }) => doc.kind === kind && doc.metadata.name === name && doc.metadata.namespace === namespace);
  const templateLabelsIn = (namespace: string | undefined) =>
    deployments.filter((d) => d.metadata?.namespace === namespace).map((d) => d.spec?.template.metadata?.labels ?? {});

  for (const d of deployments) {
    const ns = d.metadata?.namespace;
    const pod = d.spec?.template.spec;
    const where = `${label}: Deployment ${d.metadata?.name}`;
    expect(matches(d.spec?.selector.matchLabels, d.spec?.template.metadata?.labels), where).toBe(true);
    if (pod?.serviceAccountName) expect(exists('ServiceAccount', ns, pod.serviceAccountName), where).toBe(true);
    for (const volume of pod?.volumes ?? []) {
      if (volume.configMap)
        expect(exists('ConfigMap', ns, volume.configMap.name), `${where} ${volume.name}`).toBe(true);
      if (volume.persistentVolumeClaim) {
        expect(exists('PersistentVolumeClaim', ns, volume.persistentVolumeClaim.claimName), where).toBe(true);
      }
    }
    // labels with includeTemplates reach the pods.
    expect(d.spec?.template.metadata?.labels?.['app.kubernetes.io/part-of'], where).toBe('mcpd');
  }
  const services = byKind<IService>(render, 'Service');
  for (const service of services) {
    const ns = service.metadata?.namespace;
    const backing = deployments.filter(
      (d) => d.metadata?.namespace === ns && matches(service.spec?.selector, d.spec?.template.metadata?.labels),
    );
    expect(backing.length, `${label}: Service ${service.metadata?.name} selects a Deployment`).toBe(1);
    const ports = backing.flatMap((d) => d.spec?.template.spec?.containers.flatMap((c) => c.ports ?? []) ?? []);
    for (const port of service.spec?.ports ?? []) {
      const target = port.targetPort ?? port.port;
      expect(
        ports.some((p) => p.name === target || p.containerPort === target),
        `${label}: Service ${service.metadata?.name} port ${port.name}`,
      ).toBe(true);
    }
  }
  for (const hpa of byKind<IHorizontalPodAutoscaler>(render, 'HorizontalPodAutoscaler')) {
    expect(exists(hpa.spec?.scaleTargetRef.kind, hpa.metadata?.namespace, hpa.spec?.scaleTargetRef.name)).toBe(true);
  }
  for (const pdb of byKind<IPodDisruptionBudget>(render, 'PodDisruptionBudget')) {
    const selected = templateLabelsIn(pdb.metadata?.namespace).filter((l) =>
      matches(pdb.spec?.selector?.matchLabels, l),
    );
    expect(selected.length, `${label}: PodDisruptionBudget ${pdb.metadata?.name}`).toBe(1);
  }
  for (const policy of byKind<INetworkPolicy>(render, 'NetworkPolicy')) {
    const selected = templateLabelsIn(policy.metadata?.namespace).filter((l) =>
      matches(policy.spec?.podSelector.matchLabels, l),
    );
    expect(selected.length, `${label}: NetworkPolicy ${policy.metadata?.name}`).toBe(1);
  }
  for (const ingress of byKind<IIngress>(render, 'Ingress')) {
    for (const path of ingress.spec?.rules?.flatMap((rule) => rule.http?.paths ?? []) ?? []) {
      const backend = path.backend.service;
      const service = services.find(
        (s) => s.metadata?.name === backend?.name && s.metadata?.namespace === ingress.metadata?.namespace,
      );
      expect(service, `${label}: Ingress path ${path.path}`).toBeDefined();
      expect(service?.spec?.ports?.map((p) => p.port)).toContain(backend?.port?.number);
    }
  }
  // Everything is part of mcpd; the images are pinned by the kustomizations.
  for (const { doc } of render) {
    expect(doc.metadata.labels?.['app.kubernetes.io/part-of'], `${label}: ${identity(doc)}`).toBe('mcpd');
  }
  const images = deployments.flatMap((d) => d.spec?.template.spec?.containers.map((c) => c.image) ?? []);
  // kustomize's images entries pin every image to a tag or a digest (overlays choose their own).
  for (const image of images) {
    const { tag, digest } = splitImage(image ?? '');
    expect(tag ?? digest, `${label}: ${image} is pinned to a tag or a digest`).toBeTruthy();
  }
  expect(images.some((image) => image?.startsWith('mcpd:') || image?.startsWith('mcpd@'))).toBe(true);
}

/** The base and the overlay: what each must contain once rendered, beyond what their files list. */
function assertRenderShape(base: readonly Manifest[], overlay: readonly Manifest[]): void {
  for (const { doc } of base) {
    expect(doc.metadata.labels?.['app.kubernetes.io/name'], `base: ${identity(doc)}`).toBe('mcpd');
    expect(doc.metadata.namespace, `base: ${identity(doc)} leaves the namespace to overlays`).toBeUndefined();
  }
  const baseNames = new Set(base.map(({ doc }) => kindAndName(doc)));
  for (const { doc } of overlay) {
    const where = `overlay: ${identity(doc)}`;
    if (doc.kind === 'Namespace') expect(doc.metadata.name).toBe('mcpd-demo');
    else expect(doc.metadata.namespace, where).toBe('mcpd-demo');
    if (baseNames.has(kindAndName(doc))) {
      expect(doc.metadata.labels?.['app.kubernetes.io/name'], where).toBe('mcpd');
    }
  }
  expect(overlay.filter(({ doc }) => doc.kind === 'Namespace').map(({ doc }) => doc.metadata.name)).toEqual([
    'mcpd-demo',
  ]);
  const redis = byKind<IDeployment>(overlay, 'Deployment').find((d) => d.metadata?.name === 'redis');
  expect(redis?.spec?.template.spec?.containers[0]?.image).toBe('redis:7-bookworm');
  expect(redis?.metadata?.labels?.['app.kubernetes.io/name']).toBe('redis');
  const redisService = byKind<IService>(overlay, 'Service').find((s) => s.metadata?.name === 'redis');
  expect(redisService?.spec?.ports?.map((p) => p.port)).toEqual([6379]);
  const overlayNames = overlay.map(({ doc }) => kindAndName(doc));
  for (const { doc } of base) expect(overlayNames).toContain(kindAndName(doc));
}

const hasKubectl = findCommand('kubectl') !== undefined;

function kubectlKustomize(dir: string): Manifest[] {
  const run = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 20_000 });
  if (run.status !== 0) throw new Error(`kubectl kustomize ${rel(dir)} failed: ${run.stderr || run.error}`);
  const source = `kubectl kustomize ${rel(dir)}`;
  return manifestsOf(documentsIn(run.stdout, source), source, dir);
}

/** kustomize's name for a generated ConfigMap: the generator's name and a content hash. */
const hashedName = (generator: string) => new RegExp(`^${generator}-[a-z0-9]{10}$`);

/** Generated ConfigMaps get a content hash suffix from kustomize; the hand render leaves it off. */
function withoutHashSuffix(render: readonly Manifest[], generators: readonly string[]): Manifest[] {
  const strip = (name: string) => generators.find((g) => hashedName(g).test(name)) ?? name;
  return render.map((m) => {
    const doc = structuredClone(m.doc);
    if (doc.kind === 'ConfigMap') doc.metadata.name = strip(doc.metadata.name);
    for (const volume of podTemplateOf(doc)?.spec?.volumes ?? []) {
      if (volume.configMap?.name) volume.configMap.name = strip(volume.configMap.name);
    }
    return { ...m, doc };
  });
}

/** The mcpd.yaml a render ships in its ConfigMap (from a generator or a configmap.yaml alike). */
function clusterConfigText(render: readonly Manifest[]): string {
  const withConfig = byKind<IConfigMap>(render, 'ConfigMap').filter((cm) => cm.data?.['mcpd.yaml']);
  return only(withConfig, 'ConfigMap with mcpd.yaml').data?.['mcpd.yaml'] as string;
}

/** The roots' paths in the pod -> the volumes mounted there. */
const CLUSTER_ROOTS = { '/workspace/mcp-demo': 'workspace', '/shared/templates': 'templates' } as const;

/**
 * The ConfigMap's mcpd.yaml through mcpd's own parseConfig, with its two root paths pointed at
 * directories that exist here (they are volumes in the pod). Throws mcpd's ConfigError when it is invalid.
 */
function clusterConfig(text: string): Config {
  const roots = mkdtempSync(join(tmpdir(), 'mcpd-k8s-roots-'));
  try {
    const raw = parse(text, { uniqueKeys: true }) as { roots: { uri: string }[] };
    expect(raw.roots.map((root) => root.uri).sort()).toEqual(Object.keys(CLUSTER_ROOTS).sort());
    for (const root of raw.roots) {
      root.uri = join(roots, CLUSTER_ROOTS[root.uri as keyof typeof CLUSTER_ROOTS]);
      mkdirSync(root.uri);
    }
    return parseConfig(raw, join(roots, 'mcpd.yaml'), {});
  } finally {
    rmSync(roots, { recursive: true, force: true });
  }
}

describe('deploy/k8s', () => {
  let scratch: string;
  // Read and rendered once; the tests only read them (whatever they change, they change in a copy).
  /** Every manifest file's objects, as written. */
  let manifests: Manifest[];
  /** The hand renders of the base and the demo overlay. */
  let base: Manifest[];
  let overlay: Manifest[];
  /** The ConfigMaps the two renders generate. */
  let generated: Manifest[];
  /** The base ConfigMap's mcpd.yaml, as text and through mcpd's parseConfig. */
  let configText: string;
  let config: Config;

  beforeAll(() => {
    // Inside the repository (gitignored), so tsc resolves kubernetes-types from node_modules.
    mkdirSync(join(REPO, '.tmp'), { recursive: true });
    scratch = mkdtempSync(join(REPO, '.tmp', 'k8s-types-'));
    manifests = allManifests();
    base = handRender(BASE);
    overlay = handRender(OVERLAY);
    generated = [...base, ...overlay].filter(({ doc }) => doc.kind === 'ConfigMap');
    configText = clusterConfigText(base);
    config = clusterConfig(configText);
  });
  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('parses every YAML file under deploy/k8s, and every file a kustomization names exists', () => {
    const files = yamlFilesUnder(K8S);
    expect(files.map(rel)).toEqual(
      expect.arrayContaining([
        'deploy/k8s/base/kustomization.yaml',
        'deploy/k8s/base/deployment.yaml',
        'deploy/k8s/base/service.yaml',
        'deploy/k8s/base/hpa.yaml',
        'deploy/k8s/base/pdb.yaml',
        'deploy/k8s/base/networkpolicy.yaml',
        'deploy/k8s/base/ingress.yaml',
        'deploy/k8s/overlays/demo/kustomization.yaml',
      ]),
    );
    for (const file of files) expect(documentsOf(file).length, rel(file)).toBeGreaterThan(0);

    const dirs = allKustomizationDirs();
    expect(dirs.map(rel).sort()).toEqual(['deploy/k8s/base', 'deploy/k8s/overlays/demo']);
    const referenced = new Set<string>();
    for (const dir of dirs) {
      const k = readKustomization(dir);
      expect(k.resources.length, rel(k.file)).toBeGreaterThan(0);
      for (const resource of k.resources) {
        const path = resolve(dir, resource);
        expect(existsSync(path), `${rel(k.file)}: ${resource}`).toBe(true);
        if (statSync(path).isDirectory()) {
          expect(kustomizationFileIn(path), `${rel(k.file)}: ${resource} is a kustomization`).toBeDefined();
        } else {
          referenced.add(path);
        }
      }
      for (const { path } of generatorSources(k)) {
        expect(existsSync(path), `${rel(k.file)}: configMapGenerator source ${rel(path)}`).toBe(true);
      }
    }
    // No stray manifest that no kustomization deploys.
    expect([...new Set(manifests.map((m) => rel(m.file)))].sort()).toEqual([...referenced].map(rel).sort());
    expect(readKustomization(OVERLAY).resources).toContain('../../base');
  });

  it('every manifest validates against the Kubernetes OpenAPI schemas (kubernetes-models 4.5.1)', () => {
    const kinds = new Set(manifests.map(({ doc }) => doc.kind));
    for (const kind of [
      'Deployment',
      'Service',
      'ServiceAccount',
      'PersistentVolumeClaim',
      'HorizontalPodAutoscaler',
      'PodDisruptionBudget',
      'NetworkPolicy',
      'Ingress',
      'Namespace',
    ]) {
      expect(kinds, kind).toContain(kind);
    }
    // The generated ConfigMaps too.
    expect(generated.length).toBeGreaterThan(0);
    expect(validateWithModels([...manifests, ...generated])).toEqual([]);
    // The check is real: a wrong type and an unknown kind are refused.
    const deployment = named<K8sObject>(manifests, 'Deployment', 'mcpd');
    const broken = structuredClone(deployment);
    (broken.spec as Json).replicas = 'three';
    expect(validateWithModels([{ where: 'broken', file: '', doc: broken }])[0]).toMatch(/replicas must be integer/);
    const unknown = { ...structuredClone(deployment), kind: 'Deploymnet' };
    expect(validateWithModels([{ where: 'unknown', file: '', doc: unknown }])[0]).toMatch(/unknown kind/);
  });

  it('every manifest type-checks against kubernetes-types 1.30 with excess-property checks; a misspelling fails', () => {
    // A CommonJS module (.cts): kubernetes-types ships extensionless .d.ts files without an exports map,
    // which only CommonJS resolution finds under NodeNext (ESM would need `.js` specifiers).
    const check = (name: string, manifests: readonly Manifest[]) => {
      const aliases = new Map<string, { module: string; kind: string }>();
      const body = manifests.map(({ where, doc }, index) => {
        const { types } = kindEntry(doc, where);
        const alias = `${types.replace(/^kubernetes-types\//, '').replace(/\W/g, '_')}_${doc.kind}`;
        aliases.set(alias, { module: types, kind: doc.kind });
        return `// ${where}\nexport const m${index}: ${alias} = ${JSON.stringify(doc, null, 2)};\n`;
      });
      const imports = [...aliases].map(
        ([alias, { module, kind }]) => `import type { ${kind} as ${alias} } from '${module}';`,
      );
      const file = join(scratch, name);
      writeFileSync(file, `${imports.join('\n')}\n\n${body.join('\n')}`);
      return { ...typeCheckFile(file), imports };
    };

    const good = check('manifests.cts', [...manifests, ...generated]);
    expect(good.imports).toContain("import type { Deployment as apps_v1_Deployment } from 'kubernetes-types/apps/v1';");
    expect(good.output).toBe('');
    expect(good.status).toBe(0);

    // Two copies of mcpd's Deployment, each with one misspelled field (tsc reports one excess property
    // per object literal): one at the top of the spec, one deep in the pod template.
    type Mutable = Json & { spec: Json & { template: { spec: { containers: Json[] } } } };
    const mcpd = named<K8sObject>(manifests, 'Deployment', 'mcpd');
    const topLevel = structuredClone(mcpd) as unknown as Mutable;
    topLevel.spec.replicass = topLevel.spec.replicas;
    delete topLevel.spec.replicas;
    const deep = structuredClone(mcpd) as unknown as Mutable;
    const container = deep.spec.template.spec.containers[0] as Json;
    container.readinesProbe = container.readinessProbe;
    delete container.readinessProbe;
    const bad = check('misspelled.cts', [
      { where: 'misspelled spec.replicas', file: '', doc: topLevel as unknown as K8sObject },
      { where: 'misspelled readinessProbe', file: '', doc: deep as unknown as K8sObject },
    ]);
    expect(bad.status).not.toBe(0);
    const errors = bad.output.split('\n').filter((line) => line.includes('error TS'));
    expect(errors).toHaveLength(2);
    expect(errors.join('\n')).toMatch(/'"?replicass"?' does not exist in type 'DeploymentSpec'/);
    expect(errors.join('\n')).toMatch(/'"?readinesProbe"?' does not exist in type 'Container'/);
  });

  it('renders base and overlay by hand: every listed resource, the generated ConfigMap, labels, images, namespace', () => {
    for (const [dir, render] of [
      [BASE, base],
      [OVERLAY, overlay],
    ] as const) {
      const k = readKustomization(dir);
      const rendered = new Set(render.map(({ doc }) => kindAndName(doc)));
      for (const resource of k.resources) {
        const path = resolve(dir, resource);
        const listed = statSync(path).isDirectory() ? handRender(path) : manifestsIn(path);
        for (const { doc } of listed) expect(rendered, `${rel(k.file)}: ${resource}`).toContain(kindAndName(doc));
      }
      for (const generator of k.configMapGenerator) expect(rendered).toContain(`ConfigMap/${generator.name}`);
      expect(new Set(render.map(({ doc }) => identity(doc))).size, 'no duplicate objects').toBe(render.length);
    }
    expect(base.map(({ doc }) => doc.kind).sort()).toEqual(
      [
        'ConfigMap',
        'Deployment',
        'HorizontalPodAutoscaler',
        'Ingress',
        'NetworkPolicy',
        'PersistentVolumeClaim',
        'PersistentVolumeClaim',
        'PodDisruptionBudget',
        'Service',
        'ServiceAccount',
      ].sort(),
    );
    const images = (render: readonly Manifest[]) =>
      byKind<IDeployment>(render, 'Deployment').flatMap((d) => d.spec?.template.spec?.containers.map((c) => c.image));
    expect(images(base)).toEqual(['mcpd:latest']);
    const baseConfigMap = only(byKind<IConfigMap>(base, 'ConfigMap'), 'ConfigMap');
    expect(baseConfigMap.data?.['mcpd.yaml']).toBe(readFileSync(join(BASE, 'mcpd.yaml'), 'utf8'));
    assertRenderShape(base, overlay);
    assertWired(base, 'hand render of base');
    assertWired(overlay, 'hand render of overlay');
  });

  it(
    hasKubectl
      ? 'kubectl kustomize renders base and overlay to the objects of the hand render, wired together'
      : 'kubectl is not on PATH: the hand render of base and overlay is wired together (kubectl kustomize not run)',
    () => {
      const renders = new Map<string, Manifest[]>();
      for (const [dir, hand] of [
        [BASE, base],
        [OVERLAY, overlay],
      ] as const) {
        let render = hand;
        if (hasKubectl) {
          const kubectl = kubectlKustomize(dir);
          const generators = generatorNames(dir);
          // Generated names carry the content hash, and the Deployment refers to the hashed name.
          const configMapNames = byKind<IConfigMap>(kubectl, 'ConfigMap').map((cm) => cm.metadata?.name ?? '');
          for (const generator of generators) {
            expect(
              configMapNames.some((name) => hashedName(generator).test(name)),
              generator,
            ).toBe(true);
          }
          assertWired(kubectl, `kubectl kustomize ${rel(dir)}`);
          expect(validateWithModels(kubectl)).toEqual([]);
          // Apart from that suffix, kubectl builds exactly what the hand render builds: the same
          // objects, labels, images, namespaces and generated config.
          render = withoutHashSuffix(kubectl, generators);
          expect(render.map(({ doc }) => identity(doc)).sort()).toEqual(hand.map(({ doc }) => identity(doc)).sort());
          for (const { doc } of hand) {
            expect(render.find((m) => identity(m.doc) === identity(doc))?.doc, identity(doc)).toEqual(doc);
          }
        }
        assertWired(render, `render of ${rel(dir)}`);
        renders.set(dir, render);
      }
      assertRenderShape(renders.get(BASE) ?? [], renders.get(OVERLAY) ?? []);
    },
  );

  it('every pod template is hardened: resources, probes, non-root, read-only root, no privileges, seccomp', () => {
    const deployments = byKind<IDeployment>(manifests, 'Deployment');
    expect(deployments.map((d) => d.metadata?.name).sort()).toEqual(['alertmanager', 'mcpd', 'redis']);
    for (const d of deployments) {
      const name = d.metadata?.name;
      const pod = d.spec?.template.spec;
      expect(d.spec?.strategy?.type, `${name} strategy`).toBe('RollingUpdate');
      expect(d.spec?.strategy?.rollingUpdate?.maxUnavailable, `${name} maxUnavailable`).toBe(0);
      expect(pod?.automountServiceAccountToken, `${name} automountServiceAccountToken`).toBe(false);
      expect(pod?.hostNetwork ?? false).toBe(false);
      expect(pod?.hostPID ?? false).toBe(false);
      expect(pod?.containers.length).toBeGreaterThan(0);
      for (const c of containersOf(d.spec?.template as IPodTemplateSpec)) {
        const where = `${name}/${c.name}`;
        const requests = c.resources?.requests ?? {};
        const limits = c.resources?.limits ?? {};
        for (const resource of ['cpu', 'memory']) {
          expect(requests[resource], `${where} requests.${resource}`).toBeDefined();
          expect(limits[resource], `${where} limits.${resource}`).toBeDefined();
          expect(quantity(requests[resource]), `${where} ${resource} request <= limit`).toBeLessThanOrEqual(
            quantity(limits[resource]),
          );
        }
        expect(c.livenessProbe, `${where} livenessProbe`).toBeDefined();
        expect(c.readinessProbe, `${where} readinessProbe`).toBeDefined();
        const sc = c.securityContext;
        expect(sc?.runAsNonRoot ?? pod?.securityContext?.runAsNonRoot, `${where} runAsNonRoot`).toBe(true);
        expect(sc?.runAsUser ?? pod?.securityContext?.runAsUser, `${where} runAsUser`).toBeGreaterThan(0);
        expect(sc?.readOnlyRootFilesystem, `${where} readOnlyRootFilesystem`).toBe(true);
        expect(sc?.allowPrivilegeEscalation, `${where} allowPrivilegeEscalation`).toBe(false);
        expect(sc?.capabilities?.drop, `${where} capabilities.drop`).toContain('ALL');
        expect(sc?.capabilities?.add ?? [], `${where} capabilities.add`).toEqual([]);
        expect(sc?.privileged ?? false, `${where} privileged`).toBe(false);
        expect((sc?.seccompProfile ?? pod?.securityContext?.seccompProfile)?.type, `${where} seccompProfile`).toBe(
          'RuntimeDefault',
        );
        // A read-only root: whatever is written goes to a volume.
        expect(c.volumeMounts?.length ?? 0, `${where} has a writable volume`).toBeGreaterThan(0);
      }
    }

    const mcpd = named<IDeployment>(manifests, 'Deployment', 'mcpd');
    const pod = mcpd.spec?.template.spec;
    const container = only(pod?.containers ?? [], 'mcpd container');
    expect(mcpd.spec?.replicas).toBe(3);
    expect(mcpd.spec?.strategy?.rollingUpdate?.maxSurge).toBe(1);
    expect(container.image).toBe('mcpd');
    expect(container.args).toEqual(['serve']);
    expect(container.resources).toEqual({
      requests: { memory: '256Mi', cpu: '250m' },
      limits: { memory: '512Mi', cpu: '500m' },
    });
    expect(container.startupProbe?.httpGet).toMatchObject({ path: '/health', port: 8000 });
    expect(container.livenessProbe?.httpGet).toMatchObject({ path: '/health', port: 8000 });
    expect(container.readinessProbe?.httpGet).toMatchObject({ path: '/ready', port: 8000 });
    expect(pod?.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
    });
    expect(pod?.serviceAccountName).toBe('mcpd');
    const tmp = pod?.volumes?.find((v) => v.name === 'tmp');
    expect(tmp?.emptyDir).toEqual({ medium: 'Memory', sizeLimit: '64Mi' });
    expect(container.volumeMounts?.find((m) => m.name === 'tmp')?.mountPath).toBe('/tmp');
    expect(pod?.topologySpreadConstraints?.map((t) => [t.topologyKey, t.whenUnsatisfiable])).toEqual([
      ['kubernetes.io/hostname', 'DoNotSchedule'],
      ['topology.kubernetes.io/zone', 'ScheduleAnyway'],
    ]);
    for (const t of pod?.topologySpreadConstraints ?? []) {
      expect(matches(t.labelSelector?.matchLabels, mcpd.spec?.template.metadata?.labels)).toBe(true);
    }
    // Kubernetes waits terminationGracePeriodSeconds for preStop and the drain together: preStop, then
    // mcpd's grace period, then up to about 4 s of cancelling and flushing.
    const preStop = preStopDelaySeconds(container);
    expect(preStop).toBeGreaterThan(0);
    expect(pod?.terminationGracePeriodSeconds).toBeGreaterThan(config.shutdown.gracePeriodMs / 1000 + preStop + 4);
    expect(config.shutdown.gracePeriodMs).toBe(25_000);

    const redis = named<IDeployment>(manifests, 'Deployment', 'redis');
    expect(redis.spec?.template.spec?.securityContext).toMatchObject({ runAsUser: 999, runAsGroup: 999 });
    const redisContainer = only(redis.spec?.template.spec?.containers ?? [], 'redis container');
    expect(redisContainer.livenessProbe?.exec?.command).toEqual(['redis-cli', 'ping']);
    expect(redisContainer.readinessProbe?.exec?.command).toEqual(['redis-cli', 'ping']);
    const data = redisContainer.volumeMounts?.find((m) => m.mountPath === '/data');
    expect(redis.spec?.template.spec?.volumes?.find((v) => v.name === data?.name)?.emptyDir).toBeDefined();
  });

  it('availability and edge policy: HPA above the PDB, Ingress streaming and body size, NetworkPolicy both ways', () => {
    const hpa = only(byKind<IHorizontalPodAutoscaler>(manifests, 'HorizontalPodAutoscaler'), 'HPA');
    const pdb = only(byKind<IPodDisruptionBudget>(manifests, 'PodDisruptionBudget'), 'PDB');
    expect(hpa.spec?.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'mcpd' });
    expect(hpa.spec?.minReplicas).toBe(3);
    expect(hpa.spec?.maxReplicas).toBe(10);
    expect(hpa.spec?.metrics).toEqual([
      { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } },
    ]);
    expect(hpa.spec?.behavior?.scaleDown?.stabilizationWindowSeconds).toBeGreaterThan(0);
    expect(typeof pdb.spec?.minAvailable).toBe('number');
    expect(pdb.spec?.minAvailable).toBe(2);
    // A drain can always evict one pod while the PDB holds.
    expect(hpa.spec?.minReplicas).toBeGreaterThanOrEqual((pdb.spec?.minAvailable as number) + 1);

    const ingress = only(byKind<IIngress>(manifests, 'Ingress'), 'Ingress');
    const annotations = ingress.metadata?.annotations ?? {};
    const nginx = (key: string) => annotations[`nginx.ingress.kubernetes.io/${key}`];
    expect(ingress.spec?.ingressClassName).toBe('nginx');
    expect(nginx('proxy-buffering')).toBe('off');
    expect(nginxSize(nginx('proxy-body-size'))).toBe(config.server.maxBodyBytes);
    expect(config.server.maxBodyBytes).toBe(4 * 1024 * 1024);
    expect(nginx('proxy-http-version')).toBe('1.1');
    expect(nginx('ssl-redirect')).toBe('true');
    expect(Number(nginx('limit-rps'))).toBeGreaterThan(0);
    // Above the SSE keep-alive interval, so a quiet stream is not cut by nginx.
    expect(Number(nginx('proxy-read-timeout')) * 1000).toBeGreaterThan(config.server.sseKeepAliveMs);
    expect(Number(nginx('proxy-send-timeout'))).toBeGreaterThan(0);
    expect(nginx('proxy-next-upstream')?.split(/\s+/)).toEqual(['error', 'timeout']);
    expect(nginx('proxy-next-upstream')).not.toMatch(/non_idempotent/);
    const rule = only(ingress.spec?.rules ?? [], 'Ingress rule');
    expect(ingress.spec?.tls?.[0]?.hosts).toContain(rule.host);
    expect(ingress.spec?.tls?.[0]?.secretName).toBeTruthy();
    expect(rule.http?.paths.map((p) => [p.path, p.pathType, p.backend.service?.port?.number])).toEqual([
      ['/mcp', 'Prefix', 8000],
      ['/.well-known', 'Prefix', 8000],
    ]);

    for (const policy of byKind<INetworkPolicy>(manifests, 'NetworkPolicy')) {
      expect(policy.spec?.policyTypes?.slice().sort(), policy.metadata?.name).toEqual(['Egress', 'Ingress']);
    }
    const mcpdPolicy = named<INetworkPolicy>(manifests, 'NetworkPolicy', 'mcpd');
    const ingressRules = (mcpdPolicy.spec?.ingress ?? []).map((r) => ({
      from: r.from,
      ports: r.ports?.map((p) => [p.protocol, p.port]),
    }));
    expect(ingressRules).toEqual([
      {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }],
        ports: [['TCP', 8000]],
      },
      {
        from: [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
            podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
          },
        ],
        ports: [['TCP', 9464]],
      },
    ]);
    const egress = mcpdPolicy.spec?.egress ?? [];
    const egressPorts = egress.map((r) => r.ports?.map((p) => `${p.protocol}/${p.port}`));
    expect(egressPorts).toEqual([['TCP/6379'], ['UDP/53', 'TCP/53'], ['TCP/443']]);
    expect(egress[0]?.to).toEqual([{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'redis' } } }]);
    expect(egress[1]?.to?.[0]?.namespaceSelector?.matchLabels).toEqual({
      'kubernetes.io/metadata.name': 'kube-system',
    });
    // Every rule names its ports: nothing is open on every port.
    for (const r of [...egress, ...(mcpdPolicy.spec?.ingress ?? [])]) expect(r.ports?.length).toBeGreaterThan(0);
  });

  it("the ConfigMap's mcpd.yaml parses with mcpd's own schema and agrees with the manifests", () => {
    expect(config.server.host).toBe('0.0.0.0');
    expect(config.auth.mode).toBe('jwt');
    if (config.auth.mode !== 'jwt') return;
    expect(config.auth.jwt.issuer).toMatch(/^https:\/\/auth\.example\.com\//);
    expect(config.auth.jwt.jwksUrl).toMatch(/^https:\/\/auth\.example\.com\//);
    expect(config.audit.sink).toBe('stderr');
    expect(config.server.trustedProxies).toEqual(['10.0.0.0/8']);
    expect(config.metrics).toMatchObject({ enabled: true, port: 9464, host: '0.0.0.0', path: '/metrics' });
    expect(config.roots.map((r) => [r.name, r.write])).toEqual([
      ['MCP Demo Project', ['workspace/**/*']],
      ['Shared Templates', []],
    ]);

    const mcpd = named<IDeployment>(manifests, 'Deployment', 'mcpd');
    const template = mcpd.spec?.template as IPodTemplateSpec;
    const container = only(template.spec?.containers ?? [], 'mcpd container');
    // The config file is where MCPD_CONFIG says, from the ConfigMap.
    const configPath = container.env?.find((e) => e.name === 'MCPD_CONFIG')?.value ?? '';
    const configMount = container.volumeMounts?.find((m) => configPath.startsWith(`${m.mountPath}/`));
    expect(configPath).toBe('/etc/mcpd/mcpd.yaml');
    expect(configMount?.readOnly).toBe(true);
    expect(template.spec?.volumes?.find((v) => v.name === configMount?.name)?.configMap?.name).toBe('mcpd-config');
    // Ports: the server, the metrics listener, the scrape annotations, the Service.
    expect(container.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ['http', config.server.port],
      ['metrics', config.metrics.port],
    ]);
    expect(template.metadata?.annotations).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(config.metrics.port),
      'prometheus.io/path': config.metrics.path,
    });
    const service = named<IService>(manifests, 'Service', 'mcpd');
    expect(service.spec?.type).toBe('ClusterIP');
    expect(service.spec?.ports?.map((p) => [p.name, p.port])).toEqual([
      ['http', config.server.port],
      ['metrics', config.metrics.port],
    ]);
    // Each root is a mounted volume; the read-only root's volume is mounted read-only.
    const raw = parse(configText) as { roots: { uri: string; write?: string[] }[] };
    for (const root of raw.roots) {
      const mount = container.volumeMounts?.find((m) => m.mountPath === root.uri);
      expect(mount?.name, root.uri).toBe(CLUSTER_ROOTS[root.uri as keyof typeof CLUSTER_ROOTS]);
      expect(mount?.readOnly ?? false, root.uri).toBe(root.write !== undefined && root.write.length === 0);
      const claim = template.spec?.volumes?.find((v) => v.name === mount?.name)?.persistentVolumeClaim?.claimName;
      const pvc = manifests.find((m) => m.doc.kind === 'PersistentVolumeClaim' && m.doc.metadata.name === claim);
      // Every replica mounts it, on any node.
      expect((pvc?.doc.spec as { accessModes?: string[] } | undefined)?.accessModes, root.uri).toContain(
        'ReadWriteMany',
      );
    }
    expect(raw.roots.map((r) => r.uri)).toEqual(['/workspace/mcp-demo', '/shared/templates']);
    // The replicas share the overlay's Redis: its Service, on its port, which the NetworkPolicy admits.
    const redis = new URL(config.cluster.redis?.url ?? '');
    const redisService = named<IService>(overlay, 'Service', 'redis');
    expect(redis.hostname).toBe(redisService.metadata?.name);
    expect(Number(redis.port || 6379)).toBe(redisService.spec?.ports?.[0]?.port);
    const egressToRedis = named<INetworkPolicy>(manifests, 'NetworkPolicy', 'mcpd').spec?.egress?.[0];
    expect(egressToRedis?.ports?.map((p) => p.port)).toEqual([Number(redis.port || 6379)]);
    // The public URL is the Ingress's host and path, and that Host is accepted.
    const ingress = only(byKind<IIngress>(manifests, 'Ingress'), 'Ingress');
    const publicUrl = new URL(config.server.publicUrl);
    expect(publicUrl.protocol).toBe('https:');
    expect(ingress.spec?.rules?.[0]?.host).toBe(publicUrl.hostname);
    expect(ingress.spec?.rules?.[0]?.http?.paths.map((p) => p.path)).toContain(publicUrl.pathname);
    expect(config.server.allowedHosts).toContain(publicUrl.hostname);
    expect(config.server.maxBodyBytes).toBe(4_194_304);
  });

  it('runs the Alertmanager of deploy/alertmanager in the overlay, reachable on the port Prometheus sends to', () => {
    const generatedConfig = named<IConfigMap>(overlay, 'ConfigMap', 'alertmanager-config');
    expect(generatedConfig.data?.['alertmanager.yml']).toBe(
      readFileSync(join(REPO, 'deploy/alertmanager/alertmanager.yml'), 'utf8'),
    );
    const deployment = named<IDeployment>(overlay, 'Deployment', 'alertmanager');
    const container = only(deployment.spec?.template.spec?.containers ?? [], 'alertmanager container');
    expect(container.args).toContain('--config.file=/etc/alertmanager/alertmanager.yml');
    // One replica, so no gossip listener is opened.
    expect(container.args).toContain('--cluster.listen-address=');
    const mount = container.volumeMounts?.find((m) => m.mountPath === '/etc/alertmanager');
    const volume = deployment.spec?.template.spec?.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.configMap?.name).toBe('alertmanager-config');
    const service = named<IService>(overlay, 'Service', 'alertmanager');
    expect(service.spec?.ports?.map((p) => p.port)).toEqual([9093]);
    const prometheus = parse(readFileSync(join(REPO, 'deploy/prometheus/prometheus.yml'), 'utf8'));
    expect(prometheus.alerting.alertmanagers[0].static_configs[0].targets[0]).toMatch(/:9093$/);
    // The dashboards reach the Grafana sidecar by label.
    const dashboards = named<IConfigMap>(overlay, 'ConfigMap', 'grafana-dashboards');
    expect(dashboards.metadata?.labels?.grafana_dashboard).toBe('1');
    expect(Object.keys(dashboards.data ?? {})).toEqual(['mcpd-dashboard.json']);
  });
});
