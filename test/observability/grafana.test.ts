import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { typeCheckFile } from '../helpers/typecheck.js';
import { REPO } from '../helpers/workspace.js';

/**
 * Grafana cannot run on our machines: the dashboard is checked against Grafana's published schema
 * types (@grafana/schema, the way deploy/k8s is checked against kubernetes-types: tsc with excess
 * property checks, and a misspelling must fail), and the provisioning files against what Grafana's
 * provisioning reads, and against where the compose stack mounts them. Every panel's query is
 * evaluated by a real Prometheus that has scraped mcpd in test/observability/prometheus.test.ts.
 */

const GRAFANA = join(REPO, 'deploy/grafana');
const readYaml = (path: string) => parse(readFileSync(path, 'utf8'));

type Json = Record<string, unknown>;

describe('deploy/grafana', () => {
  let scratch: string;
  let dashboard: Json & { panels: Json[]; uid: string; templating: { list: Json[] } };

  beforeAll(() => {
    // Inside the repository (gitignored), so tsc resolves @grafana/schema from node_modules.
    mkdirSync(join(REPO, '.tmp'), { recursive: true });
    scratch = mkdtempSync(join(REPO, '.tmp', 'grafana-types-'));
    dashboard = JSON.parse(readFileSync(join(GRAFANA, 'mcpd-dashboard.json'), 'utf8'));
  });
  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** tsc on `const dashboardN: Dashboard = <json>` (object literals: every excess property is an error). */
  const typeCheck = (name: string, values: readonly unknown[]) => {
    const file = join(scratch, name);
    const body = values.map(
      (value, i) => `export const dashboard${i}: Dashboard = ${JSON.stringify(value, null, 2)};\n`,
    );
    writeFileSync(file, `import type { Dashboard } from '@grafana/schema';\n\n${body.join('\n')}`);
    return typeCheckFile(file, { skipLibCheck: true });
  };

  it('the dashboard type-checks against @grafana/schema with excess-property checks; a misspelling fails', () => {
    const good = typeCheck('dashboard.mts', [dashboard]);
    expect(good.output).toBe('');
    expect(good.status).toBe(0);

    // Two copies, each with one misspelled field (tsc reports one excess property per literal):
    // one at the top, one in a panel.
    const topLevel = structuredClone(dashboard) as Json;
    topLevel.refrsh = topLevel.refresh;
    delete topLevel.refresh;
    const deep = structuredClone(dashboard);
    const panel = deep.panels[0] as Json;
    panel.gridpos = panel.gridPos;
    delete panel.gridPos;
    const failed = typeCheck('misspelled.mts', [topLevel, deep]);
    expect(failed.status).not.toBe(0);
    const errors = failed.output.split('\n').filter((line) => line.includes('error TS'));
    expect(errors).toHaveLength(2);
    expect(errors.join('\n')).toMatch(/'"?refrsh"?' does not exist in type 'Dashboard'/);
    expect(errors.join('\n')).toMatch(/'"?gridpos"?' does not exist in type 'Panel/);
  });

  it('has unique panel ids and a grid that does not overlap', () => {
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos as { x: number; y: number; w: number; h: number };
      expect(x + w, `${panel.title} fits the 24-column grid`).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${panel.title} overlaps another panel at ${i},${j}`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
  });

  it('provisions a Prometheus data source and a file provider that loads the dashboard where compose mounts it', () => {
    const datasources = readYaml(join(GRAFANA, 'provisioning/datasources/mcpd.yaml'));
    expect(datasources.apiVersion).toBe(1);
    expect(datasources.datasources).toHaveLength(1);
    const [source] = datasources.datasources;
    expect(source).toMatchObject({ type: 'prometheus', access: 'proxy', isDefault: true });
    expect(Object.keys(source).sort()).toEqual(
      ['access', 'editable', 'isDefault', 'jsonData', 'name', 'type', 'uid', 'url'].sort(),
    );
    // The stack's Prometheus: compose's service name and the port it listens on.
    const compose = readYaml(join(REPO, 'deploy/compose.yaml'));
    expect(new URL(source.url).hostname).toBe('prometheus');
    expect(compose.services.prometheus.command).toContain(`--web.listen-address=:${new URL(source.url).port}`);
    // The dashboard's data source variable is of this type, so this source is offered (and default).
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(variable).toMatchObject({ type: 'datasource', query: source.type });

    const dashboards = readYaml(join(GRAFANA, 'provisioning/dashboards/mcpd.yaml'));
    expect(dashboards.apiVersion).toBe(1);
    const [provider] = dashboards.providers;
    expect(provider).toMatchObject({ type: 'file', orgId: 1, allowUiUpdates: false });
    const mounts: string[] = compose.services.grafana.volumes;
    expect(mounts).toContain('./grafana/provisioning/datasources:/etc/grafana/provisioning/datasources:ro');
    expect(mounts).toContain('./grafana/provisioning/dashboards:/etc/grafana/provisioning/dashboards:ro');
    expect(mounts).toContain(`./grafana/mcpd-dashboard.json:${provider.options.path}/mcpd-dashboard.json:ro`);
  });

  it('ships the same files to Kubernetes as ConfigMaps for the Grafana sidecar', () => {
    const overlay = join(REPO, 'deploy/k8s/overlays/demo');
    const kustomization = readYaml(join(overlay, 'kustomization.yaml'));
    const generator = (name: string) =>
      (kustomization.configMapGenerator as { name: string; files: string[]; options?: { labels?: Json } }[]).find(
        (g) => g.name === name,
      );
    const dashboards = generator('grafana-dashboards');
    expect(dashboards?.options?.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(dashboards?.files).toEqual(['mcpd-dashboard.json=grafana/mcpd-dashboard.json']);
    const datasources = generator('grafana-datasources');
    expect(datasources?.options?.labels).toMatchObject({ grafana_datasource: '1' });
    expect(datasources?.files).toEqual(['mcpd.yaml=grafana/datasource.yaml']);
    // Copies (kustomize reads no file outside its directory) that must not drift from deploy/grafana.
    expect(readFileSync(join(overlay, 'grafana/mcpd-dashboard.json'), 'utf8')).toBe(
      readFileSync(join(GRAFANA, 'mcpd-dashboard.json'), 'utf8'),
    );
    const inCluster = readYaml(join(overlay, 'grafana/datasource.yaml'));
    const inCompose = readYaml(join(GRAFANA, 'provisioning/datasources/mcpd.yaml'));
    // Only the URL differs: the cluster's Prometheus service.
    expect({ ...inCluster.datasources[0], url: '' }).toEqual({ ...inCompose.datasources[0], url: '' });
    expect(new URL(inCluster.datasources[0].url).hostname).toMatch(/^prometheus/);
  });
});
