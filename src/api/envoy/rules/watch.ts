/**
 * Watches one file for changes, as envoyproxy/ratelimit's file provider does: fs.watch on its
 * directory (which also catches Kubernetes ConfigMap symlink swaps), debounced, and a periodic stat
 * check that catches what fs.watch misses. It only says that the file may have changed; reading,
 * parsing and swapping belong to the holder.
 */
import { watch, type FSWatcher } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname } from "node:path";

/** Options of watchFile. */
export interface FileWatchOptions {
  readonly path: string;
  /** The file's signature when it was last read (see fileSignature). */
  readonly initialSignature: string;
  /** Interval of the stat check; 0 turns it off. */
  readonly pollIntervalMs: number;
  /** Watch the file's directory with fs.watch. */
  readonly watch: boolean;
  /** Called when the file may have changed. */
  readonly onChange: () => void;
}

/** A running watch. */
export interface FileWatch {
  /** Stops watching and polling. */
  close(): void;
}

const WATCH_DEBOUNCE_MS = 25;

/** Identity, size and modification time of a file ("missing" when it cannot be read). */
export async function fileSignature(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return "missing";
  }
}

/** Starts watching `options.path`; changes are reported through onChange until close(). */
export function watchFile(options: FileWatchOptions): FileWatch {
  const { path, onChange } = options;
  let signature = options.initialSignature;
  const changed = (): void => {
    void fileSignature(path).then((now) => {
      signature = now;
      onChange();
    });
  };

  let debounce: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  if (options.watch) {
    try {
      watcher = watch(dirname(path), { persistent: false }, () => {
        clearTimeout(debounce);
        debounce = setTimeout(changed, WATCH_DEBOUNCE_MS);
        debounce.unref();
      });
      watcher.on("error", () => {
        watcher?.close();
        watcher = undefined;
      });
    } catch {
      watcher = undefined; // polling still catches changes
    }
  }
  const poller =
    options.pollIntervalMs > 0
      ? setInterval(() => {
          void fileSignature(path).then((now) => {
            if (now === signature) return;
            signature = now;
            onChange();
          });
        }, options.pollIntervalMs)
      : undefined;
  poller?.unref();

  return {
    close() {
      clearInterval(poller);
      clearTimeout(debounce);
      watcher?.close();
      watcher = undefined;
    },
  };
}
