'use strict';

/**
 * The generated Zapier app: the definition validates (zapier-platform-core's own validateApp),
 * every operation labels its output, the requests it builds; then, against a running referflow
 * (REFERFLOW_BASE_URL, REFERFLOW_API_KEY): authentication, creates, searches, ordinary events that
 * change nothing, the polling trigger and the REST-hook trigger.
 * Run by referflow's test suite (tests/test_integrations.py), which starts the service.
 */
const assert = require('node:assert/strict');
const http = require('node:http');
const { test } = require('node:test');
const zapier = require('zapier-platform-core');
const { compileApp, validateApp } = require('zapier-platform-core/src/tools/schema');
const { verifySignature } = require('../lib/referflow');
const App = require('../index');

const appTester = zapier.createAppTester(App);
const live = Boolean(process.env.REFERFLOW_BASE_URL && process.env.REFERFLOW_API_KEY);
const authData = { baseUrl: process.env.REFERFLOW_BASE_URL, apiKey: process.env.REFERFLOW_API_KEY };
const suffix = `${process.pid}${Date.now().toString(36)}`;

test('the app definition validates with zero errors', () => {
  assert.deepEqual(validateApp(compileApp(App)), []);
});

test('every trigger, create and search labels its output fields', () => {
  const operations = ['triggers', 'creates', 'searches'].flatMap((kind) => Object.values(App[kind]));
  assert.ok(operations.length >= 12);
  operations.forEach(({ key, operation }) => {
    const fields = operation.outputFields.flatMap((field) => (typeof field === 'function'
      ? field(null, { inputData: { event: 'referral.claimed' } }) : [field]));
    assert.ok(fields.length >= 3, key);
    fields.forEach((field) => assert.ok(field.key && field.label, `${key}: ${JSON.stringify(field)}`));
    const labels = fields.map((field) => field.label);
    assert.equal(new Set(labels).size, labels.length, `${key}: a label repeats`);
  });
  // The review queue is a polling trigger (newest first, by id), not a search.
  assert.equal(App.triggers.listReviews.operation.type, 'polling');
  assert.equal(App.searches.listReviews, undefined);
  assert.match(App.triggers.listReviews.operation.sample.id, /^ref_/);
});

test('requests: Prefer on claim, qualify and reverse; an empty nullable field is null; lists split', async () => {
  const sent = [];
  const z = { request: async (request) => { sent.push(request); return { data: {} }; } };
  const bundle = (inputData) => ({ authData: { baseUrl: 'https://refer.example.com/', apiKey: 'rfk_x' }, inputData });
  await App.creates.claimReferral.operation.perform(z, bundle({ code: '', friendExternalId: 'cus_1', friendEmail: 'a@b.co' }));
  await App.creates.qualifyReferral.operation.perform(z, bundle({
    friendExternalId: 'cus_1', eventId: 'in_1', eventType: 'first_order', eventAmount: '4900', eventCurrency: 'EUR',
    eventOccurredAt: '2026-11-20T10:00:00Z', eventPaymentReferences: ['ch_1', '', 'pi_1'],
  }));
  await App.creates.reverseReferralForFriend.operation.perform(z, bundle({
    reason: 'refund', paymentReferences: 'ch_1, pi_1', eventRefundedTotal: '500', eventFull: 'false',
  }));
  await App.creates.approveReferral.operation.perform(z, bundle({ referralId: 'ref_1', reviewer: 'ann' }));
  const [claim, qualify, reverse, approve] = sent;
  assert.equal(claim.url, 'https://refer.example.com/v1/referrals/claim');
  assert.deepEqual([claim, qualify, reverse].map((r) => r.headers.Prefer), Array(3).fill('outcome=explicit'));
  assert.equal(approve.headers.Prefer, undefined);
  assert.deepEqual(claim.body, { code: null, friend: { external_id: 'cus_1', email: 'a@b.co' } });
  assert.deepEqual(qualify.body.event.payment_references, ['ch_1', 'pi_1']);
  assert.equal(qualify.body.event.amount, 4900);
  assert.deepEqual(reverse.body, {
    reason: 'refund', friend_external_id: null, payment_references: ['ch_1', 'pi_1'],
    event: { refunded_total: 500, full: false },
  });
});

test('signatures: the published Standard Webhooks vector verifies; changes do not', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const headers = {
    'Http-Webhook-Id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    'Http-Webhook-Timestamp': '1614265330',
    'Http-Webhook-Signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  };
  assert.equal(verifySignature(secret, headers, '{"test": 2432232314}', 1614265330), true);
  assert.equal(verifySignature(secret, headers, '{"test": 2432232315}', 1614265330), false);
  assert.equal(verifySignature(secret, headers, '{"test": 2432232314}', 1614265330 + 301), false);
  assert.equal(verifySignature('whsec_AAAA', headers, '{"test": 2432232314}', 1614265330), false);
});

test('authentication accepts the key and refuses a wrong one', { skip: !live }, async () => {
  const program = await appTester(App.authentication.test, { authData });
  assert.match(program.id, /^prg_/);
  await assert.rejects(appTester(App.authentication.test, { authData: { ...authData, apiKey: 'rfk_wrong' } }));
});

test('creates and searches run a referral end to end', { skip: !live }, async () => {
  const { creates, searches } = App;
  const link = await appTester(creates.createLink.operation.perform, {
    authData, inputData: { advocateExternalId: `zap-adv-${suffix}`, advocateEmail: `adv-${suffix}@example.com` },
  });
  assert.match(link.url, /\/r\//);
  const claimInput = {
    code: link.code, friendExternalId: `zap-friend-${suffix}`, friendEmail: `friend-${suffix}@example.com`,
    idempotencyKey: `claim-${suffix}`,
  };
  const referral = await appTester(creates.claimReferral.operation.perform, { authData, inputData: claimInput });
  assert.equal(referral.status, 'pending');
  assert.equal(referral.outcome, 'claimed');
  assert.equal(referral.changed, true);
  // Zapier retried the step: the same Idempotency-Key replays the first answer.
  const replay = await appTester(creates.claimReferral.operation.perform, { authData, inputData: claimInput });
  assert.equal(replay.id, referral.id);
  const qualified = await appTester(creates.qualifyReferral.operation.perform, {
    authData,
    inputData: {
      friendExternalId: `zap-friend-${suffix}`, eventId: `order-${suffix}`, eventType: 'first_order',
      eventAmount: '4900', eventCurrency: 'EUR', eventOccurredAt: new Date().toISOString(),
    },
  });
  assert.ok(['held', 'approved'].includes(qualified.status), qualified.status);
  assert.deepEqual([qualified.outcome, qualified.changed], ['qualified', true]);
  const [found] = await appTester(searches.getReferral.operation.perform, { authData, inputData: { referralId: referral.id } });
  assert.equal(found.id, referral.id);
  assert.deepEqual(await appTester(searches.getReferral.operation.perform, {
    authData, inputData: { referralId: 'ref_missing' },
  }), []);
  const [advocate] = await appTester(searches.getAdvocateByExternalId.operation.perform, {
    authData, inputData: { externalId: `zap-adv-${suffix}` },
  });
  assert.equal(advocate.codes[0].code, link.code);
  // Bad input: referflow's stable error code reaches the Zap's error message.
  await assert.rejects(appTester(creates.qualifyReferral.operation.perform, {
    authData,
    inputData: {
      friendExternalId: `zap-friend-${suffix}`, eventId: 'x', eventType: 'first_order', eventAmount: '12.5',
      eventCurrency: 'EUR', eventOccurredAt: 'yesterday',
    },
  }), (error) => /validation_failed/.test(`${error.code} ${error.message}`) || /422/.test(error.message));
});

test('ordinary events with nothing to do come back with changed = false, not as errors', { skip: !live }, async () => {
  const { creates } = App;
  const run = (action, inputData) => appTester(creates[action].operation.perform, { authData, inputData });
  const link = await run('createLink', { advocateExternalId: `zap-calm-${suffix}`, advocateEmail: `calm-${suffix}@example.com` });
  const friend = { friendExternalId: `zap-calm-friend-${suffix}`, friendEmail: `calm-friend-${suffix}@example.com` };
  const noCode = await run('claimReferral', { ...friend, code: '' });
  assert.deepEqual([noCode.outcome, noCode.changed, noCode.referral_id], ['no_code', false, null]);
  const unknown = await run('claimReferral', { ...friend, code: 'NOSUCHCODE' });
  assert.deepEqual([unknown.outcome, unknown.changed], ['unknown_code', false]);
  const nobody = await run('qualifyReferral', {
    friendExternalId: `zap-nobody-${suffix}`, eventId: `calm-order-0-${suffix}`, eventType: 'first_order',
    eventAmount: '4900', eventCurrency: 'EUR', eventOccurredAt: new Date().toISOString(),
  });
  assert.deepEqual([nobody.outcome, nobody.changed], ['not_referred', false]);
  const claimed = await run('claimReferral', { ...friend, code: link.code });
  const order = {
    friendExternalId: friend.friendExternalId, eventId: `calm-order-${suffix}`, eventType: 'first_order',
    eventAmount: '4900', eventCurrency: 'EUR', eventOccurredAt: new Date().toISOString(),
    eventPaymentReferences: [`ch_calm_${suffix}`, `pi_calm_${suffix}`],
  };
  assert.equal((await run('qualifyReferral', order)).changed, true);
  const again = await run('qualifyReferral', order);
  assert.deepEqual([again.id, again.outcome, again.changed], [claimed.id, 'duplicate', false]);
  const stranger = await run('reverseReferralForFriend', { reason: 'refund', paymentReferences: `ch_unknown_${suffix}` });
  assert.deepEqual([stranger.outcome, stranger.changed], ['unknown_payment', false]);
  // A dispute that names only the charge finds the referral by the payment it qualified with.
  const reversed = await run('reverseReferralForFriend', {
    reason: 'chargeback', paymentReferences: `ch_calm_${suffix}`, eventId: `dp_calm_${suffix}`,
  });
  assert.deepEqual([reversed.id, reversed.status, reversed.outcome, reversed.changed], [claimed.id, 'reversed', 'reversed', true]);
});

test('the polling trigger reports referrals in review, newest first', { skip: !live }, async () => {
  const { creates, triggers } = App;
  const link = await appTester(creates.createLink.operation.perform, {
    authData, inputData: { advocateExternalId: `zap-review-${suffix}`, advocateEmail: `review-${suffix}@example.com` },
  });
  const claims = [];
  for (const n of [1, 2]) {
    claims.push(await appTester(creates.claimReferral.operation.perform, {
      authData,
      inputData: { code: link.code, friendExternalId: `zap-review-${n}-${suffix}`, friendEmail: `r${n}-${suffix}@mailinator.com` },
    }));
  }
  assert.deepEqual(claims.map((c) => c.status), ['in_review', 'in_review']);
  const polled = await appTester(triggers.listReviews.operation.perform, { authData, inputData: {} });
  const ours = polled.filter((item) => claims.some((c) => c.id === item.id));
  assert.deepEqual(ours.map((item) => item.id), [claims[1].id, claims[0].id]);
  assert.ok(polled.every((item) => /^ref_/.test(item.id) && item.status === 'in_review'));
  const decided = await appTester(creates.approveReferral.operation.perform, {
    authData, inputData: { referralId: claims[0].id, reviewer: 'zapier-test' },
  });
  assert.notEqual(decided.status, 'in_review');
  const after = await appTester(triggers.listReviews.operation.perform, { authData, inputData: {} });
  assert.ok(!after.some((item) => item.id === claims[0].id) && after.some((item) => item.id === claims[1].id));
});

const waitFor = async (check, seconds) => {
  for (let i = 0; i < seconds * 10; i += 1) {
    if (check()) {
      return;
    }
    await new Promise((resolve) => { setTimeout(resolve, 100); });
  }
  assert.fail('timed out');
};

test('the REST hook subscribes, verifies signed deliveries, lists samples and unsubscribes', { skip: !live }, async () => {
  const deliveries = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => { deliveries.push({ headers: request.headers, body }); response.end('ok'); });
  });
  await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  try {
    const trigger = App.triggers.referralEvent.operation;
    const inputData = { event: 'advocate.link_created' };
    const targetUrl = `http://127.0.0.1:${server.address().port}/zap`;
    const subscribeData = await appTester(trigger.performSubscribe, { authData, targetUrl, inputData });
    assert.match(subscribeData.id, /^whk_/);
    assert.match(subscribeData.secret, /^whsec_/);
    await appTester(App.creates.createLink.operation.perform, {
      authData, inputData: { advocateExternalId: `zap-hook-${suffix}`, advocateEmail: `hook-${suffix}@example.com` },
    });
    await waitFor(() => deliveries.length > 0, 30);
    const [delivery] = deliveries;
    const zapierHeaders = Object.fromEntries(Object.entries(delivery.headers).map(([name, value]) => [
      `Http-${name.split('-').map((part) => part[0].toUpperCase() + part.slice(1)).join('-')}`, value]));
    const rawRequest = { method: 'POST', headers: zapierHeaders, content: delivery.body };
    const events = await appTester(trigger.perform, {
      authData, subscribeData, inputData, rawRequest, cleanedRequest: JSON.parse(delivery.body),
    });
    assert.equal(events.length, 1);
    assert.equal(events[0].type, 'advocate.link_created');
    assert.equal(events[0].data.advocate.external_id, `zap-hook-${suffix}`);
    const forged = { ...rawRequest, content: delivery.body.replace(`zap-hook-${suffix}`, 'someone-else') };
    await assert.rejects(appTester(trigger.perform, {
      authData, subscribeData, inputData, rawRequest: forged, cleanedRequest: JSON.parse(forged.content),
    }), /signature/);
    const samples = await appTester(trigger.performList, { authData, inputData });
    assert.ok(samples.length >= 1 && samples.every((event) => event.type === 'advocate.link_created'));
    await appTester(trigger.performUnsubscribe, { authData, subscribeData });
    const listed = await fetch(`${authData.baseUrl}/v1/webhooks`, {
      headers: { Authorization: `Bearer ${authData.apiKey}` },
    }).then((response) => response.json());
    assert.ok(!listed.items.some((item) => item.id === subscribeData.id));
    // Unsubscribing twice (Zapier retried) is not an error.
    await appTester(trigger.performUnsubscribe, { authData, subscribeData });
    // referflow keeps one subscription per endpoint: one of this target URL left behind (an
    // unsubscribe that failed) is replaced by the next subscribe, not a 409.
    const first = await appTester(trigger.performSubscribe, { authData, targetUrl, inputData });
    const second = await appTester(trigger.performSubscribe, { authData, targetUrl, inputData });
    assert.notEqual(second.id, first.id);
    const mine = await fetch(`${authData.baseUrl}/v1/webhooks`, {
      headers: { Authorization: `Bearer ${authData.apiKey}` },
    }).then((response) => response.json());
    assert.deepEqual(mine.items.filter((item) => item.url === targetUrl).map((item) => item.id), [second.id]);
    await appTester(trigger.performUnsubscribe, { authData, subscribeData: second });
  } finally {
    server.close();
  }
});
