/**
 * One validation at the edge for every text field of every admin and auth request: no control
 * character (Unicode category Cc: U+0000 to U+001F, U+007F to U+009F) gets past it, so none reaches
 * the database (Postgres refuses NUL with an error), a log line or another administrator's screen.
 */
import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { type ReflectMessage, isReflectMessage, reflect } from "@bufbuild/protobuf/reflect";
import { ApiError } from "./errors.js";
import type { CallContext, Handlers } from "./rpc.js";

const CONTROL = /\p{Cc}/u;

/** The problem with a piece of text (a field, a header value), or undefined when it has none. */
export function controlCharacterProblem(what: string, text: string): string | undefined {
  const m = CONTROL.exec(text);
  if (!m) return undefined;
  const code = m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
  return `${what} must not contain control characters (found U+${code} at position ${m.index})`;
}

function messageProblem(message: ReflectMessage, path: string): string | undefined {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    const name = path + field.name;
    if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) {
      const problem = controlCharacterProblem(name, message.get(field) as string);
      if (problem) return problem;
    } else if (field.fieldKind === "list") {
      let i = 0;
      for (const item of message.get(field)) {
        const problem =
          typeof item === "string" ? controlCharacterProblem(`${name}[${i}]`, item) : isReflectMessage(item) ? messageProblem(item, `${name}[${i}].`) : undefined;
        if (problem) return problem;
        i++;
      }
    } else if (field.fieldKind === "message") {
      const problem = messageProblem(message.get(field), `${name}.`);
      if (problem) return problem;
    } else if (field.fieldKind === "map") {
      for (const [key, value] of message.get(field)) {
        const problem =
          (typeof key === "string" ? controlCharacterProblem(`${name} key`, key) : undefined) ??
          (typeof value === "string" ? controlCharacterProblem(`${name}[${String(key)}]`, value) : isReflectMessage(value) ? messageProblem(value, `${name}[${String(key)}].`) : undefined);
        if (problem) return problem;
      }
    }
  }
  return undefined;
}

/** The first text field of `message` holding a control character, as a message for the client. */
export function requestTextProblem<D extends DescMessage>(schema: D, message: MessageShape<D>): string | undefined {
  return messageProblem(reflect(schema, message), "");
}

/**
 * Wraps every handler of a service so that a request with a control character in any text field
 * (nested and repeated ones included) fails with INVALID_ARGUMENT naming the field, before the
 * handler runs.
 */
export function refusingControlCharacters<S extends DescService>(service: S, handlers: Handlers<S>): Handlers<S> {
  const wrapped: Record<string, (req: never, ctx: CallContext) => unknown> = {};
  const all = handlers as Record<string, (req: never, ctx: CallContext) => unknown>;
  for (const method of service.methods) {
    const handler = all[method.localName];
    if (!handler) continue;
    wrapped[method.localName] = (req, ctx) => {
      const problem = requestTextProblem(method.input, req);
      if (problem) throw new ApiError("invalid_argument", problem);
      return handler.call(handlers, req, ctx);
    };
  }
  return wrapped as Handlers<S>;
}
