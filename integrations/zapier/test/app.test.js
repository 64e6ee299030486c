'use strict';

/**
 * The generated Zapier app against a running referflow (REFERFLOW_BASE_URL, REFERFLOW_API_KEY):
 * the definition validates, authentication, creates, searches and the REST-hook trigger.
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
  } finally {
    server.close();
  }
});
