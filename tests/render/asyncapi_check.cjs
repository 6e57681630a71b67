// Validate AsyncAPI documents with the official parser (@asyncapi/parser).
// Usage: node asyncapi_check.cjs NODE_DIR < {"name": "document text", ...}
// Prints {"name": [{"severity", "code", "message", "path"}, ...], ...} as JSON;
// severity is the parser's number (0 error, 1 warning, 2 information, 3 hint).
const path = require("path");
const { Parser } = require(path.join(process.argv[2], "node_modules", "@asyncapi", "parser"));

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => {
  const parser = new Parser();
  const results = {};
  for (const [name, text] of Object.entries(JSON.parse(input))) {
    const diagnostics = await parser.validate(text);
    results[name] = diagnostics.map((d) => ({
      severity: d.severity, code: String(d.code), message: d.message, path: d.path,
    }));
  }
  process.stdout.write(JSON.stringify(results));
});
