// dist/cjs holds CommonJS files under a "type": "module" package: mark the folder as CommonJS.
import { writeFileSync } from "node:fs";
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{ "type": "commonjs" }\n');
