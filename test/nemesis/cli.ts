/**
 * `npm run nemesis -- [options]`: one real-process fault campaign (see README.md beside this file).
 * Exit code 0 when the run found no anomaly, 1 when it did (the run directory is kept and named),
 * 2 for bad options.
 */
import { runCampaign } from "./campaign.ts";
import { parseCampaignArgs, usage } from "./options.ts";

let options: ReturnType<typeof parseCampaignArgs>;
try {
  options = parseCampaignArgs(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`nemesis: ${(error as Error).message}\n\n${usage}`);
  process.exit(2);
}
if (options === "help") {
  process.stdout.write(usage);
  process.exit(0);
}
const result = await runCampaign(options, (line) => process.stdout.write(`${line}\n`));
process.stdout.write(`\n${result.text}\n`);
process.stdout.write(
  result.kept
    ? `history, faults, summary and node logs kept in ${result.runDirectory}\n`
    : "passed; run directory removed\n",
);
process.exitCode = result.passed ? 0 : 1;
