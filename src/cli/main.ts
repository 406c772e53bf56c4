#!/usr/bin/env node
/**
 * The `verdict` binary (package.json "bin"): runs one command line against process streams.
 */
import { runCli } from "./program.js";

runCli(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`verdict: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 6;
  },
);
