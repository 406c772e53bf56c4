import { describe, expect, it } from "vitest";
import { API_KEY_LENGTH, apiKeyId, apiKeyProblem, hashApiKey, mintApiKey, newKeyId } from "../../src/authn/api-key.js";

describe("API keys", () => {
  it("mints well-formed keys with a public id and a hash of the whole key", () => {
    const k = mintApiKey();
    expect(k.secret).toMatch(/^vk_[a-z2-7]{12}_[0-9A-Za-z]{38}$/);
    expect(k.secret.length).toBe(API_KEY_LENGTH);
    expect(apiKeyProblem(k.secret)).toBeUndefined();
    expect(apiKeyId(k.secret)).toBe(k.id);
    expect(k.secretHash).toBe(hashApiKey(k.secret));
    expect(k.secretHash).not.toContain(k.secret.slice(16));
  });

  it("keeps the id on rotation and changes the secret", () => {
    const a = mintApiKey("abcdefghijkl");
    const b = mintApiKey("abcdefghijkl");
    expect(apiKeyId(a.secret)).toBe("abcdefghijkl");
    expect(a.secret).not.toBe(b.secret);
    expect(a.secretHash).not.toBe(b.secretHash);
  });

  it("makes distinct keys (no repeats in 2000)", () => {
    const seen = new Set(Array.from({ length: 2000 }, () => mintApiKey().secret));
    expect(seen.size).toBe(2000);
    expect(new Set(Array.from({ length: 2000 }, newKeyId)).size).toBe(2000);
  });

  it("rejects a mistyped key by its checksum", () => {
    const { secret } = mintApiKey();
    const i = 20;
    const typo = secret.slice(0, i) + (secret[i] === "a" ? "b" : "a") + secret.slice(i + 1);
    expect(apiKeyProblem(typo)).toBe("API key checksum does not match");
    // every single-character substitution in the secret part is caught
    let caught = 0;
    for (let j = 16; j < secret.length; j++) {
      const c = secret[j] === "Z" ? "Y" : "Z";
      if (apiKeyProblem(secret.slice(0, j) + c + secret.slice(j + 1)) !== undefined) caught++;
    }
    expect(caught).toBe(secret.length - 16);
  });

  it.each([
    ["", "wrong length"],
    ["vk_short", "wrong length"],
    ["xx_" + "a".repeat(API_KEY_LENGTH - 3), "wrong format"],
    ["vk_ABCDEFGHIJKL_" + "a".repeat(38), "wrong format"],
    ["vk_abcdefghijkl-" + "a".repeat(38), "wrong format"],
    ["vk_abcdefghijkl_" + "a".repeat(38), "checksum"],
  ])("rejects %j", (key, fragment) => {
    expect(apiKeyProblem(key)).toContain(fragment);
  });
});
