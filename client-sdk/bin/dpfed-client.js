#!/usr/bin/env node
// dpfed-client: the institution's node as a command (the same as `dpfed client`), for an institution that
// installs @dpfed/client alone. It runs the compiled package (dist/), or its TypeScript source when node
// runs with the "source" export condition and tsx (the repository's tests).
const { main } = await import('@dpfed/client/client-command');
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`dpfed-client: ${error instanceof Error ? error.message : String(error)}\n`);
    if (process.env.DPFED_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1;
  },
);
