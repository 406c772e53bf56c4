/**
 * The CLI's streams and environment (process.* in the binary, buffers in tests), and how it reads
 * secrets: from stdin (the whole input, one trailing newline removed) or from a terminal prompt
 * that does not echo.
 */
import { CliError, EXIT } from "./exit-codes.js";

/** Where the CLI reads and writes. */
export interface CliIo {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly env: NodeJS.ProcessEnv;
}

const MAX_SECRET_BYTES = 64 * 1024;

/** Reads all of stdin as one secret (for --password-stdin and friends); a trailing newline is dropped. */
export async function readSecretFromStdin(io: CliIo, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    if (size > MAX_SECRET_BYTES) throw new CliError(`the ${what} on stdin is longer than ${MAX_SECRET_BYTES} bytes`, EXIT.usage);
    chunks.push(buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (text === "") throw new CliError(`no ${what} on stdin`, EXIT.usage);
  return text;
}

/** Asks for a secret on the terminal without echoing it. Fails (usage) without a terminal. */
export function promptSecret(io: CliIo, question: string, flagHint: string): Promise<string> {
  const { stdin } = io;
  if (!stdin.isTTY || !stdin.setRawMode) {
    return Promise.reject(new CliError(`no terminal to ask for the ${question.replace(/:\s*$/, "")}; use ${flagHint}`, EXIT.usage));
  }
  // Echo goes off before the prompt appears, so nothing typed after it is ever shown.
  stdin.setRawMode(true);
  stdin.resume();
  io.stderr.write(question);
  return new Promise((resolve, reject) => {
    let value = "";
    const finish = (error?: CliError) => {
      stdin.removeListener("data", onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stderr.write("\n");
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString()) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") return finish();
        if (ch === "\u0003") return finish(new CliError("cancelled", 130));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on("data", onData);
  });
}

/** A secret from stdin when `fromStdin`, else from a prompt asked twice when `confirm`. */
export async function readSecret(io: CliIo, options: { fromStdin: boolean; what: string; flag: string; confirm?: boolean }): Promise<string> {
  if (options.fromStdin) return readSecretFromStdin(io, options.what);
  const first = await promptSecret(io, `${options.what}: `, options.flag);
  if (first === "") throw new CliError(`an empty ${options.what} is not allowed`, EXIT.usage);
  if (options.confirm) {
    const second = await promptSecret(io, `${options.what} again: `, options.flag);
    if (second !== first) throw new CliError(`the two ${options.what}s differ`, EXIT.usage);
  }
  return first;
}
