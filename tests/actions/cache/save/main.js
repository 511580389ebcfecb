// act runs JavaScript actions with the host's node; the logic is in tests/actions/cache/fake_cache.py,
// whose path the test passes in E2E_FAKE_CACHE.
const { spawnSync } = require("child_process");
const r = spawnSync("python3", [process.env.E2E_FAKE_CACHE, "save"], { stdio: "inherit" });
process.exit(r.status === null ? 1 : r.status);
