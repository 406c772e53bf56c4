import { Code, ConnectError } from "@connectrpc/connect";
import { createMethodSerializationLookup, envelopeDecompress } from "@connectrpc/connect/protocol";
import { describe, expect, it } from "vitest";
import { DecisionService } from "../../gen/verdict/v1/decision_pb.js";
import { clientFacingError } from "../../src/server/connect-errors.js";

/** clientFacingError's answer as [code, message], or "kept"; and the errors it reported as internal. */
function facing(error: ConnectError, refused: boolean): { answer: [Code, string] | "kept"; reported: string[] } {
  const reported: string[] = [];
  const replaced = clientFacingError(error, "verdict.v1.CheckRequest", refused, (e) => reported.push(e.rawMessage));
  return { answer: replaced === undefined ? "kept" : [replaced.code, replaced.rawMessage], reported };
}

/** What connect-es (the installed version) raises for a binary CheckRequest that does not decode. */
function connectDecodeError(bytes: Uint8Array): ConnectError {
  const serialization = createMethodSerializationLookup(DecisionService.method.check, undefined, undefined, { readMaxBytes: 1024, writeMaxBytes: 1024 });
  try {
    serialization.getI(true).parse(bytes);
  } catch (error) {
    return error as ConnectError;
  }
  throw new Error("decoded");
}

describe("clientFacingError", () => {
  it("makes a refused call's server fault INVALID_ARGUMENT with connect-es's reason, reporting nothing", () => {
    expect(facing(new ConnectError("parse binary: premature EOF", Code.Internal), true)).toEqual({
      answer: [Code.InvalidArgument, "malformed verdict.v1.CheckRequest message: premature EOF"],
      reported: [],
    });
    expect(facing(new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal), true).answer).toEqual([
      Code.InvalidArgument,
      "a message is flagged compressed, but the request names no compression",
    ]);
    // Whatever connect-es says, a call refused before its implementation is the client's to fix.
    expect(facing(new ConnectError("decompression failed", Code.Internal), true)).toEqual({
      answer: [Code.InvalidArgument, "the request could not be read: decompression failed"],
      reported: [],
    });
    expect(facing(new ConnectError("internal error", Code.Unknown), true).answer).toEqual([Code.InvalidArgument, "the request could not be read"]);
    expect(facing(new ConnectError(`parse binary: ${"x".repeat(1000)}`, Code.Internal), true).answer[1].length).toBeLessThan(300);
  });

  it("still recognises connect-es's own texts for a binary message that does not decode and a compressed envelope it cannot read", async () => {
    // These fail when a connect-es upgrade rewords them: the codes stay right (the call is refused
    // either way), but the reason would lose its wording; see connect-errors.ts.
    const decode = connectDecodeError(new Uint8Array([0x0a, 0x05, 0x61]));
    expect([decode.code, decode.rawMessage]).toEqual([Code.Internal, expect.stringMatching(/^parse binary: \S/)]);
    expect(facing(decode, true).answer).toEqual([Code.InvalidArgument, expect.stringMatching(/^malformed verdict\.v1\.CheckRequest message: \S/)]);
    const compressed = await envelopeDecompress({ flags: 1, data: new Uint8Array([1]) }, null, 1024).then(
      () => undefined,
      (error: unknown) => error as ConnectError,
    );
    expect(compressed && facing(compressed, true).answer).toEqual([Code.InvalidArgument, "a message is flagged compressed, but the request names no compression"]);
  });

  it.each([Code.Internal, Code.Unknown, Code.DataLoss])("hides the message of a server fault after the implementation started (code %s) and reports it", (code) => {
    expect(facing(new ConnectError("serialize binary: cannot encode field secret", code), false)).toEqual({
      answer: [code, "internal error"],
      reported: ["serialize binary: cannot encode field secret"],
    });
    expect(facing(new ConnectError("parse binary: premature EOF", code), false).answer).toEqual([code, "internal error"]);
    expect(facing(new ConnectError("internal error", code), false)).toEqual({ answer: "kept", reported: [] });
  });

  it("keeps client errors and other codes as they are", () => {
    for (const code of [Code.InvalidArgument, Code.Unimplemented, Code.ResourceExhausted, Code.Unavailable, Code.Unauthenticated]) {
      for (const refused of [true, false]) expect(facing(new ConnectError("parse binary: premature EOF", code), refused)).toEqual({ answer: "kept", reported: [] });
    }
  });
});
