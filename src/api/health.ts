/**
 * gRPC health checking (grpc.health.v1): SERVING once the policy is loaded, NOT_SERVING before
 * that and while draining. Watch streams every change.
 */
import { create } from "@bufbuild/protobuf";
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthListResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";
import { ApiError } from "./errors.js";

/**
 * Tracks serving status and notifies watchers. It reports on "" (the server as a whole) and on
 * every service the server registers (the gRPC server registers each service it mounts).
 */
export class HealthState {
  private readonly services = new Set<string>([""]);
  private serving = false;
  private draining = false;
  private readonly watchers = new Set<(s: ServingStatus) => void>();

  /** The status of the server now. */
  get status(): ServingStatus {
    return this.serving && !this.draining ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  /** Marks whether the policy is loaded. */
  setServing(serving: boolean): void {
    const before = this.status;
    this.serving = serving;
    this.notify(before);
  }

  /** Marks the server as draining (NOT_SERVING from now on). */
  drain(): void {
    const before = this.status;
    this.draining = true;
    this.notify(before);
  }

  /** Adds a service health reports on (its full name, like "verdict.v1.AuthService"). */
  register(service: string): void {
    this.services.add(service);
  }

  /** Whether health reports on this service name. */
  knows(service: string): boolean {
    return this.services.has(service);
  }

  /** Registers a watcher; returns a function that removes it. */
  watch(fn: (s: ServingStatus) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  /** The answer to Check for a service name; throws NOT_FOUND for an unknown one. */
  check(req: HealthCheckRequest): HealthCheckResponse {
    if (!this.services.has(req.service)) throw new ApiError("not_found", `unknown service ${JSON.stringify(req.service.slice(0, 128))}`);
    return create(HealthCheckResponseSchema, { status: this.status });
  }

  /** Handlers for Check and List (Watch is served by the gRPC server, which streams). */
  handlers() {
    return {
      check: (req: HealthCheckRequest) => this.check(req),
      list: () => this.list(),
    };
  }

  /** The answer to List. */
  list() {
    const statuses: Record<string, HealthCheckResponse> = {};
    for (const s of this.services) statuses[s] = create(HealthCheckResponseSchema, { status: this.status });
    return create(HealthListResponseSchema, { statuses });
  }

  private notify(before: ServingStatus): void {
    const now = this.status;
    if (now !== before) for (const w of this.watchers) w(now);
  }
}

export { ServingStatus };
