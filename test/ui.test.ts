// The operator's view in a real browser: Debian's `chromium`, driven by playwright-core (never a
// browser download), on the Temporal UI of the run's dev server (test/run.ts starts it with its UI).
// It follows the "awaiting approval" link as `npm start` prints it, opens a containment, reads its
// one-line status, and sends a malformed command from the UI's signal dialog.
//
// Why the UI's workflow page once looked blank in headless Chromium: it is a single-page app that
// renders after `load`, and it polls, so "network idle" never comes. Screenshots taken at `load`
// are white; waiting for "networkidle" times out. Waiting for the element itself works at any
// viewport; no GPU flag is needed. Current details are rendered in an iframe (`/render?content=`),
// so they are read inside that frame.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import { LabProvider } from '../activities/providers/lab';
import { describeContainment, submitSignal } from '../client/containments';
import { VIEWS, uiLink } from '../client/views';
import { parsePolicy } from '../workflows/policy';
import type { ContainmentState } from '../workflows/schemas';
import { approvalLadder, eventually, labIdentity, signal } from './fixtures';
import { closeTestEnv, isolatedConfig, operate, withWorker } from './harness';

after(closeTestEnv);

const CHROMIUM = process.env.CORDON_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.CORDON_UI_SHOTS ?? '/tmp/cordon-ui-shots';
const IN_CI = !!(process.env.CI || process.env.CORDON_CI);
// A user's machine without Chromium skips with the reason; CI runs the test, which then fails loudly.
const skip = !existsSync(CHROMIUM) && !IN_CI ? `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set CORDON_CHROMIUM)` : false;
if (skip) console.log(`cordon test: SKIPPING the browser test: ${skip}`);

/** The columns the README tells an operator to add once. */
const COLUMNS = ['CordonStatus', 'CordonStage', 'CordonWaitingFor', 'CordonStageSince', 'CordonNextDeadline'];

const view = (name: string) => {
  const v = VIEWS.find((x) => x.name === name);
  assert.ok(v, `no view ${name}`);
  return uiLink(process.env.CORDON_TEST_UI_URL!, 'default', v.query);
};

/** The frame the UI renders a containment's current details in. */
async function detailsFrame(page: Page): Promise<Frame> {
  return eventually(async () => page.frames().find((f) => f.url().includes('/render?content=') && decodeURIComponent(f.url()).includes('Last actions')), 'the current details frame', 30_000);
}

/** Opens the containment page's "User Metadata" tab, fresh (details are read once per page load), and returns the details text. */
async function currentDetails(page: Page, url: string): Promise<string> {
  await page.goto(url);
  await page.getByText('User Metadata', { exact: true }).filter({ visible: true }).click();
  const frame = await detailsFrame(page);
  await frame.locator('body').getByText('Last actions').waitFor();
  return frame.locator('body').innerText();
}

test('the operator follows the "awaiting approval" link, reads a containment\'s status, and a malformed UI signal is recorded', { skip, timeout: 240_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is required in CI and missing at ${CHROMIUM}: .ci/run installs Debian's chromium`);
  assert.ok(process.env.CORDON_TEST_UI_URL, 'test/run.ts starts the dev server with its UI and sets CORDON_TEST_UI_URL');
  mkdirSync(SHOTS, { recursive: true });

  // One worker, one lab, five containments in the states the views ask about, and a dry run.
  const tag = Math.random().toString(36).slice(2, 8);
  const id = (what: string) => `ui-${tag}-${what}`;
  const policy = parsePolicy({
    version: 'ui-1',
    rules: [
      { name: 'timed', severity: 60, match: { triggers: ['impossible-travel'] }, suppress: ['revoke-sessions'], evidence: ['sessions'], stages: [{ stage: 'restrict', gate: { type: 'timer', after: '0s' }, keep: ['orders:read'] }], retainFor: '1h' },
      { name: 'approve-each-stage', severity: 50, match: {}, suppress: ['revoke-sessions', 'revoke-tokens'], evidence: ['auth-events', 'sessions'], stages: approvalLadder(), retainFor: '1h' },
    ],
  });
  const config = isolatedConfig({ policy });
  const lab = new LabProvider(config.labFile);
  await lab.dir.seed(Object.fromEntries(['appr-a', 'appr-b', 'held', 'contained'].map((w) => [id(w), labIdentity()])));

  await withWorker(config, async ({ client }) => {
    const start = async (what: string, o: { trigger?: 'impossible-travel'; dryRun?: boolean } = {}) =>
      (await submitSignal(client, signal({ identityId: id(what), ...(o.trigger ? { trigger: o.trigger, identityKind: 'human' } : {}) }), { taskQueue: config.taskQueue, dryRun: o.dryRun })).workflowId;
    const until = (wf: string, what: string, ok: (s: ContainmentState) => boolean) =>
      eventually(async () => { const s = await describeContainment(client, wf); return ok(s) && s; }, `${wf}: ${what}`, 30_000);

    const apprA = await start('appr-a');
    const apprB = await start('appr-b');
    const held = await start('held');
    const contained = await start('contained', { trigger: 'impossible-travel' });
    const gone = await start('gone'); // never seeded: suppression fails, a human is asked
    const dry = await start('appr-a', { dryRun: true });
    await until(apprA, 'waiting for approval', (s) => s.waiting?.for === 'approval');
    await until(apprB, 'waiting for approval', (s) => s.waiting?.for === 'approval');
    await until(held, 'waiting for approval', (s) => s.waiting?.for === 'approval');
    await operate(client, config, held, { type: 'hold', reason: 'owner on the phone' });
    await until(held, 'held', (s) => s.status === 'held');
    await until(contained, 'contained', (s) => s.status === 'contained');
    await until(gone, 'needs attention', (s) => s.status === 'needs-attention');
    await client.workflow.getHandle(dry).result();

    // Every ready-made view answers on the server, with exactly the containments it promises.
    const ours = [apprA, apprB, held, contained, gone, dry];
    const expected: Record<string, string[]> = {
      'awaiting-approval': [apprA, apprB],
      'needs-attention': [gone],
      held: [held],
      contained: [contained],
      real: [apprA, apprB, held, contained, gone],
    };
    for (const v of VIEWS) {
      await eventually(async () => {
        const found: string[] = [];
        for await (const w of client.workflow.list({ query: v.query })) if (ours.includes(w.workflowId)) found.push(w.workflowId);
        return JSON.stringify(found.sort()) === JSON.stringify([...expected[v.name]!].sort());
      }, `view "${v.name}" to list ${expected[v.name]!.join(', ')}`, 30_000);
    }

    let browser: Browser | undefined;
    let page: Page | undefined;
    let step = 'launch';
    try {
      // playwright-core only drives it: the browser is Debian's, never one it downloads.
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
      page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
      page.setDefaultTimeout(30_000);

      step = 'awaiting-approval list';
      await page.goto(view('awaiting-approval'));
      for (const wf of [apprA, apprB]) await page.getByRole('link', { name: wf, exact: true }).waitFor();
      for (const wf of [held, contained, gone, dry]) assert.equal(await page.getByText(wf, { exact: true }).count(), 0, `${wf} must not be in the "awaiting approval" view`);

      step = "add Cordon's columns as the README says";
      await page.getByTestId('workflows-summary-table-configuration-button').click();
      for (const c of ['Run ID', 'Type', 'End']) await page.getByRole('button', { name: `Remove ${c} column` }).click();
      for (const c of COLUMNS) await page.getByRole('button', { name: `Add ${c} column` }).click();
      await page.getByRole('button', { name: /close/i }).filter({ visible: true }).first().click();
      await page.getByText('Configure Workflows Table').waitFor({ state: 'hidden' });
      await page.getByTitle('Collapse', { exact: true }).filter({ visible: true }).click(); // the saved-views panel: room for the columns
      await page.reload(); // the UI keeps the columns in this browser
      const row = page.getByRole('row').filter({ hasText: apprA });
      await row.getByText('approval', { exact: true }).waitFor();
      for (const c of COLUMNS) await page.getByRole('columnheader', { name: c, exact: true }).waitFor();
      assert.match(await row.innerText(), /active\s+suppressed\s+approval\s+\d{4}-\d\d-\d\d UTC \d\d:\d\d:\d\d/, 'status, stage, waiting for and since in the row');
      const listShot = join(SHOTS, 'awaiting-approval-list.png');
      await page.screenshot({ path: listShot });

      step = 'real-containments list';
      await page.goto(view('real'));
      for (const wf of [apprA, held, contained, gone]) await page.getByRole('link', { name: wf, exact: true }).waitFor();
      assert.equal(await page.getByText(dry, { exact: true }).count(), 0, 'the dry run must not be among the real containments');

      step = 'open a containment from the list';
      await page.goto(view('awaiting-approval'));
      await page.getByRole('link', { name: apprA, exact: true }).click();
      await page.waitForURL(/\/workflows\/cordon%2Flab%2F/);
      const workflowUrl = page.url().replace(/\/[a-z-]+$/, '/user-metadata');
      const details = await currentDetails(page, workflowUrl);
      const headline = details.split('\n')[0]!;
      assert.match(headline, /^suppressed · waiting for approval since \d\d:\d\d:\d\d UTC · next: restrict once approved by a responder or lead \(gate restrict#\d+\)$/, `the one-line status, as shown: ${headline}`);
      assert.match(details, /plan approve-each-stage · policy ui-1 [0-9a-f]{12}/);
      assert.match(details, /cordon evidence [0-9a-f]{12}/, 'evidence is named by the command that prints it');
      // Nothing is clipped: the UI sizes the details frame without the body's margins (see the workflow's details()).
      const frame = await detailsFrame(page);
      const last = await frame.locator('li').last().boundingBox();
      const box = await (await frame.frameElement()).boundingBox();
      assert.ok(last && box && last.y + last.height <= box.y + box.height, `the last action (${JSON.stringify(last)}) is clipped by the details frame (${JSON.stringify(box)})`);
      const detailsShot = join(SHOTS, 'containment-details.png');
      await page.screenshot({ path: detailsShot });

      step = 'send a malformed command from the signal dialog';
      await page.getByRole('button', { name: 'More Actions' }).click();
      await page.getByText('Send a Signal', { exact: true }).filter({ visible: true }).click();
      const dialog = page.locator('dialog[open], [role=dialog]').filter({ visible: true }).first();
      await dialog.getByTestId('signal-select-button').click();
      const option = dialog.getByRole('option').filter({ hasText: 'Operator command' });
      assert.match(await option.innerText(), /Payload: \{"type":"advance"/, 'the dialog shows the payload\'s shape');
      await option.click();
      await dialog.locator('.cm-content').click();
      await page.keyboard.insertText('{"type":"aprove","reason":"typo sent from the UI"}');
      await dialog.getByTestId('confirm-modal-button').click();
      await dialog.waitFor({ state: 'hidden' });

      step = 'find the rejection in the containment';
      const state = await until(apprA, 'the malformed command on the record', (s) => s.actions.some((a) => a.action === 'command:aprove'));
      const rejected = state.actions.find((a) => a.action === 'command:aprove')!;
      assert.equal(rejected.outcome, 'rejected');
      assert.match(rejected.detail, /invalid command: type/);
      assert.equal(state.status, 'active', 'a malformed command changes nothing');
      const after = await currentDetails(page, workflowUrl);
      assert.match(after, /command:aprove rejected \(unauthenticated\): invalid command: type/, `the rejection in the UI's details:\n${after}`);
      const rejectedShot = join(SHOTS, 'rejected-signal-details.png');
      await page.screenshot({ path: rejectedShot });
      console.log(`cordon test: UI screenshots: ${listShot} ${detailsShot} ${rejectedShot}`);
    } catch (err) {
      const shot = join(SHOTS, `failure-${step.replace(/[^a-z]+/gi, '-')}.png`);
      await page?.screenshot({ path: shot }).catch(() => undefined);
      console.error(`cordon test: the browser test failed at "${step}"; screenshot: ${shot}`);
      throw err;
    } finally {
      await browser?.close();
    }
  });
});
