// The official JS verdicts on a batch of webhook requests, for tests/unit/test_webhook_node_oracles.py.
// stdin: a JSON list of {scheme: "github" | "shopify", secrets: [str, ...], headers: {name: value},
// body: base64}. stdout: a JSON list of booleans, true where the library accepts the request.
// The body reaches each library as the string a JS server would make of the raw bytes (UTF-8).
import { verifyWithFallback } from "@octokit/webhooks-methods";
import "@shopify/shopify-api/adapters/node";
import { ApiVersion, shopifyApi } from "@shopify/shopify-api";

const shopifyBySecret = new Map();

function shopify(secret) {
  if (!shopifyBySecret.has(secret)) {
    shopifyBySecret.set(
      secret,
      shopifyApi({
        apiKey: "oracle",
        apiSecretKey: secret,
        scopes: [],
        hostName: "localhost",
        apiVersion: ApiVersion.January25,
        isEmbeddedApp: false,
        logger: { log: async () => {} },
      }),
    );
  }
  return shopifyBySecret.get(secret);
}

function header(headers, name) {
  const found = Object.keys(headers).find((key) => key.toLowerCase() === name);
  return found === undefined ? undefined : headers[found];
}

async function verdict({ scheme, secrets, headers, body }) {
  const payload = Buffer.from(body, "base64").toString("utf8");
  try {
    if (scheme === "github") {
      const [first, ...others] = secrets;
      return await verifyWithFallback(first, payload, header(headers, "x-hub-signature-256"), others);
    }
    if (scheme === "shopify") {
      const lowered = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
      for (const secret of secrets) {
        const result = await shopify(secret).webhooks.validate({
          rawBody: payload,
          rawRequest: { headers: lowered, method: "POST", url: "/hooks/shopify" },
          rawResponse: {},
        });
        if (result.valid) return true;
      }
      return false;
    }
    throw new Error(`unknown scheme ${scheme}`);
  } catch (error) {
    if (error instanceof TypeError && String(error.message).includes("@octokit")) return false;
    throw error;
  }
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const cases = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const verdicts = [];
for (const item of cases) verdicts.push(await verdict(item));
process.stdout.write(JSON.stringify(verdicts));
