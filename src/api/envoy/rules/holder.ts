/**
 * Holds the rules in force and swaps in a new version when the file changes, keeping the last good
 * rules (and counting the failure) when a new version cannot be read or parsed, as
 * envoyproxy/ratelimit's service swaps its configuration.
 */
import { readFile } from "node:fs/promises";
import type { CompiledRules, RulesSource } from "./model.js";
import { parseRules } from "./parse.js";
import { fileSignature, watchFile } from "./watch.js";

/** The outcome of one reload attempt. */
export type ReloadResult =
  | { readonly ok: true; readonly changed: boolean }
  | { readonly ok: false; readonly error: string };

/** Options of createRulesHolder. */
export interface RulesHolderOptions {
  /** The rules file (YAML or JSON). */
  readonly path: string;
  /** Interval of the stat check that catches changes fs.watch misses; default 5000 ms, 0 turns it off. */
  readonly pollIntervalMs?: number;
  /** Watch the file's directory with fs.watch; default true. */
  readonly watch?: boolean;
  /** Called after every reload attempt triggered by a change (not by the initial load). */
  readonly onReload?: (result: ReloadResult) => void;
}

/** Holds the current rules, reloading them when the file changes; invalid files keep the last good rules. */
export interface RulesHolder extends RulesSource {
  /** The last good rules. */
  current(): CompiledRules;
  /** Reads the file now; resolves after a read that started after this call. Never rejects. */
  reload(): Promise<ReloadResult>;
  /** Successful loads that changed the rules, including the initial load. */
  readonly loadCount: number;
  /** Reload attempts that failed (unreadable or invalid file) and kept the last good rules. */
  readonly failureCount: number;
  /** The message of the most recent failure, cleared by the next successful load. */
  readonly lastError: string | undefined;
  /** Stops watching and polling. */
  close(): void;
}

/**
 * Loads the rules file (throwing RulesError, or the read error, when the first load fails) and
 * keeps it current: on changes reported by watchFile, and on reload().
 */
export async function createRulesHolder(options: RulesHolderOptions): Promise<RulesHolder> {
  const { path } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 5000;
  if (!Number.isInteger(pollIntervalMs) || pollIntervalMs < 0) {
    throw new RangeError(`pollIntervalMs must be a non-negative integer, got ${pollIntervalMs}`);
  }
  const initialSignature = await fileSignature(path);
  let text = await readFile(path, "utf8");
  let rules = parseRules(text, path);
  let loadCount = 1;
  let failureCount = 0;
  let lastError: string | undefined;

  const load = async (): Promise<ReloadResult> => {
    try {
      const next = await readFile(path, "utf8");
      if (next === text) return { ok: true, changed: false };
      rules = parseRules(next, path);
      text = next;
      loadCount++;
      lastError = undefined;
      return { ok: true, changed: true };
    } catch (error) {
      failureCount++;
      lastError = error instanceof Error ? error.message : String(error);
      return { ok: false, error: lastError };
    }
  };

  let running: Promise<ReloadResult> | undefined;
  let queued: Promise<ReloadResult> | undefined;
  const reload = (): Promise<ReloadResult> => {
    if (running === undefined) {
      running = load().finally(() => {
        running = undefined;
      });
      return running;
    }
    queued ??= running.then(() => {
      queued = undefined;
      return reload();
    });
    return queued;
  };

  const watch = watchFile({
    path,
    initialSignature,
    pollIntervalMs,
    watch: options.watch ?? true,
    onChange() {
      void reload().then((result) => options.onReload?.(result));
    },
  });

  return {
    current: () => rules,
    reload,
    get loadCount() {
      return loadCount;
    },
    get failureCount() {
      return failureCount;
    },
    get lastError() {
      return lastError;
    },
    close: () => watch.close(),
  };
}
