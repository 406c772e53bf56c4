import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { clientFacingError } from "../../src/server/connect-errors.js";

/** clientFacingError's answer as [code, message], or "kept"; and the errors it reported as internal. */
function facing(error: ConnectError): { answer: [Code, string] | "kept"; reported: string[] } {
  const reported: string[] = [];
  const replaced = clientFacingError(error, "verdict.v1.CheckRequest", (e) => reported.push(e.rawMessage));
  return { answer: replaced === undefined ? "kept" : [replaced.code, replaced.rawMessage], reported };
}

describe("clientFacingError", () => {
  it("makes connect-es's undecodable request INVALID_ARGUMENT with the decoder's reason", () => {
    expect(facing(new ConnectError("parse binary: premature EOF", Code.Internal))).toEqual({
      answer: [Code.InvalidArgument, "malformed verdict.v1.CheckRequest message: premature EOF"],
      reported: [],
    });
    expect(facing(new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal)).answer).toEqual([
      Code.InvalidArgument,
      "a message is flagged compressed, but the request names no compression",
    ]);
  });

  it.each([Code.Internal, Code.Unknown, Code.DataLoss])("hides the message of any other server fault (code %s) and reports it", (code) => {
    expect(facing(new ConnectError("serialize binary: cannot encode field secret", code))).toEqual({
      answer: [code, "internal error"],
      reported: ["serialize binary: cannot encode field secret"],
    });
    expect(facing(new ConnectError("internal error", code))).toEqual({ answer: "kept", reported: [] });
  });

  it("keeps client errors and other codes as they are", () => {
    for (const code of [Code.InvalidArgument, Code.Unimplemented, Code.ResourceExhausted, Code.Unavailable, Code.Unauthenticated]) {
      expect(facing(new ConnectError("parse binary: premature EOF", code))).toEqual({ answer: "kept", reported: [] });
    }
  });
});
