/**
 * The manifests in k8s/ parse, and the settings that keep Envoy, Verdict and Kubernetes in step
 * agree with each other: ports, the ext_authz filter, probes, timeouts and request sizes.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { loadConfig } from "../../src/config/config.js";
import { parseRules } from "../../src/api/envoy/rules/parse.js";
import { usableCpus } from "../../src/cluster/cpu-count.js";

const K8S = join(import.meta.dirname, "../../k8s");

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

async function manifests(file: string): Promise<Doc[]> {
  const docs = parseAllDocuments(await readFile(join(K8S, file), "utf8"), { uniqueKeys: true });
  for (const doc of docs) expect(doc.errors.map((e) => e.message)).toEqual([]);
  return docs.map((d) => d.toJS() as Doc);
}

/** A Kubernetes CPU quantity ("2", "2500m") in cores. */
function cores(quantity: string | number): number {
  const text = String(quantity);
  return text.endsWith("m") ? Number(text.slice(0, -1)) / 1000 : Number(text);
}

/** A Kubernetes memory quantity ("512Mi", "1Gi") in MiB. */
function mebibytes(quantity: string): number {
  const found = /^(\d+)(Mi|Gi)$/.exec(quantity);
  if (!found) throw new Error(`unexpected memory quantity ${quantity}`);
  return Number(found[1]) * (found[2] === "Gi" ? 1024 : 1);
}

function find(docs: Doc[], kind: string, name: string): Doc {
  const found = docs.find((d) => d.kind === kind && d.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
}

describe("k8s manifests", () => {
  it("every file parses as YAML with unique keys and every document has a kind and a name", async () => {
    const files = (await readdir(K8S)).filter((f) => f.endsWith(".yaml"));
    expect(files.sort()).toEqual(["envoy.yaml", "secret.example.yaml", "verdict.yaml"]);
    for (const file of files) {
      for (const doc of await manifests(file)) {
        expect(typeof doc.apiVersion).toBe("string");
        expect(typeof doc.kind).toBe("string");
        expect(doc.metadata.name).toMatch(/^[a-z0-9-]+$/);
      }
    }
  });

  it("Verdict: its env is a valid Config, probes hit the real endpoints, the rules ConfigMap is valid", async () => {
    const docs = await manifests("verdict.yaml");
    const deployment = find(docs, "Deployment", "verdict");
    const container = deployment.spec.template.spec.containers[0];
    const env: Record<string, string> = Object.fromEntries(container.env.filter((e: Doc) => "value" in e).map((e: Doc) => [e.name, e.value]));
    const config = loadConfig({ ...env, DATABASE_URL: "postgres://verdict@db:5432/verdict", VERDICT_ROOT_PASSWORD: "a-long-enough-secret" });
    const ports = Object.fromEntries(container.ports.map((p: Doc) => [p.name, p.containerPort]));
    expect(ports).toEqual({ grpc: config.grpcAddr.port, http: config.httpAddr.port });
    expect(container.startupProbe.grpc.port).toBe(config.grpcAddr.port);
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(container.resources.requests.cpu).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.shutdownGraceMs + 5000);

    const rulesMap = find(docs, "ConfigMap", "verdict-ext-authz-rules");
    const mount = container.volumeMounts.find((m: Doc) => m.name === "rules");
    expect(config.extAuthz.rulesPath).toBe(`${mount.mountPath}/rules.yaml`);
    const rules = parseRules(rulesMap.data["rules.yaml"], "ConfigMap verdict-ext-authz-rules");
    expect(rules.actionFor("DELETE", "/v1/orders/42")).toBe("delete:orders");
    expect(rules.isExempt("/healthz")).toBe(true);

    const service = find(docs, "Service", "verdict");
    expect(service.spec.clusterIP).toBe("None");
    expect(service.spec.ports.find((p: Doc) => p.name === "grpc").port).toBe(config.grpcAddr.port);
    expect(find(docs, "PodDisruptionBudget", "verdict").spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);

    const hpa = find(docs, "HorizontalPodAutoscaler", "verdict");
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "verdict" });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(deployment.spec.replicas);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    // Utilization targets are relative to the request: without one the HPA cannot act.
    expect(hpa.spec.metrics[0].resource.name).toBe("cpu");
    expect(container.resources.requests.cpu).toBeDefined();
  });

  it("Verdict: VERDICT_WORKERS=auto runs one worker per requested core (from the CPU limit), and memory covers them all", async () => {
    const container = find(await manifests("verdict.yaml"), "Deployment", "verdict").spec.template.spec.containers[0];
    const env: Record<string, string> = Object.fromEntries(container.env.filter((e: Doc) => "value" in e).map((e: Doc) => [e.name, e.value]));
    expect(loadConfig({ ...env, DATABASE_URL: "postgres://verdict@db:5432/verdict" }).workers).toBe("auto");
    const { requests, limits } = container.resources;
    // What `auto` reads in the pod: the kubelet sets cgroup v2 cpu.max to the limit times a 100 ms period.
    const limit = cores(limits.cpu);
    const cgroup = (path: string) => (path === "/proc/self/cgroup" ? "0::/\n" : path === "/sys/fs/cgroup/cpu.max" ? `${Math.round(limit * 100_000)} 100000\n` : undefined);
    const workers = usableCpus(cgroup, 64);
    expect(workers).toBeGreaterThanOrEqual(2);
    expect(workers).toBe(cores(requests.cpu));
    // Beyond the workers' cores, less than one more: room for GC and libuv threads, never a third worker.
    expect(limit - workers).toBeGreaterThanOrEqual(0);
    expect(limit - workers).toBeLessThan(1);
    // bench/RESULTS.md: about 70 MiB for the primary and 150 MiB per worker, plus the policy per worker.
    expect(mebibytes(requests.memory)).toBeGreaterThanOrEqual(70 + workers * 150);
    expect(mebibytes(limits.memory)).toBeGreaterThanOrEqual(1.25 * mebibytes(requests.memory));
  });

  it("the example Secret has exactly the keys the Deployment reads, and placeholders only", async () => {
    const deployment = find(await manifests("verdict.yaml"), "Deployment", "verdict");
    const refs = deployment.spec.template.spec.containers[0].env
      .filter((e: Doc) => e.valueFrom?.secretKeyRef)
      .map((e: Doc) => e.valueFrom.secretKeyRef);
    for (const ref of refs) expect(ref.name).toBe("verdict-secrets");
    const secret = find(await manifests("secret.example.yaml"), "Secret", "verdict-secrets");
    expect(Object.keys(secret.stringData).sort()).toEqual(refs.map((r: Doc) => r.key).sort());
    for (const value of Object.values(secret.stringData)) expect(value).toMatch(/CHANGE-ME|^redis:\/\/redis:6379$/);
  });

  it("Envoy: ext_authz over gRPC v3 to Verdict's gRPC port, 100 ms timeout, fail closed, no bodies", async () => {
    const verdictDocs = await manifests("verdict.yaml");
    const verdictEnv: Record<string, string> = Object.fromEntries(
      find(verdictDocs, "Deployment", "verdict").spec.template.spec.containers[0].env.filter((e: Doc) => "value" in e).map((e: Doc) => [e.name, e.value]),
    );
    const config = loadConfig(verdictEnv);
    const docs = await manifests("envoy.yaml");
    const bootstrap = parse(find(docs, "ConfigMap", "envoy-config").data["envoy.yaml"], { uniqueKeys: true });
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const filters = hcm.http_filters;
    expect(filters.map((f: Doc) => f.name)).toEqual(["envoy.filters.http.ext_authz", "envoy.filters.http.router"]);
    const extAuthz = filters[0].typed_config;
    expect(extAuthz["@type"]).toBe("type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz");
    expect(extAuthz.transport_api_version).toBe("V3");
    expect(extAuthz.grpc_service.envoy_grpc.cluster_name).toBe("verdict");
    expect(extAuthz.grpc_service.timeout).toBe("0.1s");
    expect(extAuthz.failure_mode_allow).toBe(false);
    expect(extAuthz.with_request_body).toBeUndefined();
    expect(extAuthz.include_peer_certificate).toBe(false);
    // Verdict fails closed with its own answer before Envoy gives up.
    expect(config.extAuthz.timeoutMs).toBeLessThan(100);
    // The largest CheckRequest Envoy can build still fits what Verdict accepts.
    expect(hcm.max_request_headers_kb * 1024 + 16 * 1024).toBeLessThanOrEqual(config.maxRequestBytes);
    expect(hcm.normalize_path).toBe(true);

    const cluster = bootstrap.static_resources.clusters.find((c: Doc) => c.name === "verdict");
    expect(cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http2_protocol_options).toBeDefined();
    const endpoint = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    // A short Service name, resolved in Envoy's own namespace: no namespace baked into the example.
    expect(endpoint.address).toBe("verdict");
    expect(endpoint.port_value).toBe(config.grpcAddr.port);
    expect(cluster.health_checks[0].grpc_health_check.service_name).toBe("envoy.service.auth.v3.Authorization");

    const routes = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes;
    const perRoute = routes[0].typed_per_filter_config["envoy.filters.http.ext_authz"];
    expect(perRoute.check_settings.context_extensions["verdict.action"]).toBe("read:reports");

    const deployment = find(docs, "Deployment", "envoy");
    const container = deployment.spec.template.spec.containers[0];
    expect(container.volumeMounts[0].mountPath).toBe("/etc/envoy");
    expect(container.args).toContain("/etc/envoy/envoy.yaml");
    expect(container.readinessProbe.httpGet.port).toBe("admin");
    expect(find(docs, "PodDisruptionBudget", "envoy").spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
  });
});
