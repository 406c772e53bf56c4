/**
 * No import circles under src/: every relative import (type-only ones too) of every src/**\/*.ts
 * file is an edge, and the graph must have no strongly connected component of more than one file
 * (nor a file importing itself). Imports are read with TypeScript's own pre-processor.
 */
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "../../src");

type Graph = ReadonlyMap<string, readonly string[]>;

/** The relative imports of every .ts file under `root`, as paths relative to `root`. */
function importGraph(root: string): Graph {
  const files = readdirSync(root, { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".ts"))
    .map((name) => name.split("\\").join("/"));
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(root, file), "utf8"), true, true);
    const targets = importedFiles
      .map((imported) => imported.fileName)
      .filter((name) => name.startsWith("./") || name.startsWith("../"))
      .map((name) => relative(root, resolve(root, dirname(file), name.replace(/\.js$/, ".ts"))).split("\\").join("/"))
      .filter((target) => known.has(target));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Every import circle: strongly connected components (Tarjan) of more than one file, or a self-import. */
function findCircles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    for (let member = stack.pop()!; ; member = stack.pop()!) {
      onStack.delete(member);
      component.push(member);
      if (member === node) break;
    }
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) circles.push(component.sort());
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return circles;
}

describe("import circles", () => {
  it("finds a circle when there is one", () => {
    const graph: Graph = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts"]],
      ["c.ts", ["a.ts"]],
      ["d.ts", ["a.ts", "d.ts"]],
      ["e.ts", ["a.ts"]],
    ]);
    expect(findCircles(graph)).toEqual([["a.ts", "b.ts", "c.ts"], ["d.ts"]]);
    expect(findCircles(new Map([["a.ts", ["b.ts"]], ["b.ts", []], ["c.ts", ["a.ts", "b.ts"]]]))).toEqual([]);
  });

  it("reads the imports of src/", () => {
    const graph = importGraph(SRC);
    expect(graph.get("store/sql-store.ts")).toContain("store/sql-driver.ts");
    expect(graph.get("store/migrations.ts")).toEqual(["store/sql-driver.ts"]);
  });

  it("has no import circle under src/", () => {
    expect(findCircles(importGraph(SRC))).toEqual([]);
  });
});
