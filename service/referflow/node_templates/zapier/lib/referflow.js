'use strict';

/**
 * The runtime of the generated app: authentication header, error mapping, request building from
 * the field tables of the specs, the polling trigger, REST-hook subscription and signature
 * verification.
 */
const crypto = require('crypto');

const TOLERANCE_SECONDS = 300;
const PREFER_OUTCOME = 'outcome=explicit';
// referflow's list endpoints page with ?limit= (at most 200) and ?after=<next_cursor>.
const PAGE_SIZE = 200;
const MAX_POLL_PAGES = 5;

const baseUrl = (bundle) => String(bundle.authData.baseUrl || '').replace(/\/+$/, '');

const addApiKey = (request, z, bundle) => {
  if (bundle.authData.apiKey) {
    request.headers.Authorization = `Bearer ${bundle.authData.apiKey}`;
  }
  return request;
};

/** referflow answers errors as {code, status, message, errors}: surface the stable code. */
const throwReferflowError = (response, z) => {
  let error = {};
  try {
    error = JSON.parse(response.content);
  } catch (ignored) {
    error = { message: response.content };
  }
  if (response.status === 401) {
    throw new z.errors.RefreshAuthError(error.message || 'referflow refused the API key');
  }
  throw new z.errors.Error(`${error.code || 'referflow_error'}: ${error.message || `referflow answered ${response.status}`}`,
    error.code || 'referflow_error', response.status);
};

const raiseForStatus = (response, z) => {
  if (response.status >= 400 && !response.skipThrowForStatus) {
    throwReferflowError(response, z);
  }
  return response;
};

const setPath = (target, dotted, value) => {
  const parts = dotted.split('.');
  let node = target;
  parts.slice(0, -1).forEach((part) => {
    node[part] = node[part] || {};
    node = node[part];
  });
  node[parts[parts.length - 1]] = value;
};

const convert = (field, value) => {
  if (field.type === 'integer') {
    const number = Number(value);
    return Number.isInteger(number) ? number : value; // referflow explains a bad value
  }
  if (field.type === 'number') {
    const number = Number(value);
    return Number.isFinite(number) ? number : value;
  }
  if (field.type === 'boolean') {
    return value === true || value === 'true' || value === 'yes';
  }
  if (field.type === 'json' && typeof value === 'string') {
    try {
      return JSON.parse(value);
    } catch (ignored) {
      return value; // referflow explains a bad value
    }
  }
  return value;
};

/** A list field's values: mapped line items, one or several comma-separated IDs; empty ones dropped. */
const listOf = (value) => [].concat(value)
  .flatMap((entry) => (typeof entry === 'string' ? entry.split(',') : [entry]))
  .map((entry) => (typeof entry === 'string' ? entry.trim() : entry))
  .filter((entry) => entry !== '' && entry !== null && entry !== undefined);

const isEmpty = (value) => value === undefined || value === null || value === '';

/**
 * Build {path, query, body} of one call from the spec's field table and the Zap's input. An empty
 * field is not sent, except a nullable one (the API's word for "the event did not carry it"),
 * which is sent as null: referflow answers it with an outcome instead of a validation error.
 */
const buildRequest = (operation, inputData) => {
  let path = operation.path;
  const params = {};
  const body = {};
  operation.fields.forEach((field) => {
    const raw = inputData[field.key];
    const value = field.list && !isEmpty(raw) ? listOf(raw) : raw;
    if (isEmpty(value) || (field.list && value.length === 0)) {
      if (field.nullable && field.in === 'body') {
        setPath(body, field.property, null);
      }
      return;
    }
    if (field.in === 'path') {
      path = path.replace(`{${field.property}}`, encodeURIComponent(String(value)));
    } else if (field.in === 'query') {
      params[field.property] = String(value);
    } else {
      setPath(body, field.property, field.list ? value.map((entry) => convert(field, entry)) : convert(field, value));
    }
  });
  return { path, params, body };
};

/**
 * perform() for a create: one referflow call, the JSON answer is the result. Operations that
 * honour it send `Prefer: outcome=explicit`: ordinary events with nothing to do (no code, a
 * customer nobody referred, a duplicate) answer 200 with {outcome, changed: false, ...} instead
 * of an error, so the Zap goes on and a Filter step on "Changed" decides.
 */
const performCreate = (operation) => async (z, bundle) => {
  const { path, params, body } = buildRequest(operation, bundle.inputData);
  const headers = {};
  if (operation.idempotent && bundle.inputData.idempotencyKey) {
    headers['Idempotency-Key'] = String(bundle.inputData.idempotencyKey);
  }
  if (operation.outcomes) {
    headers.Prefer = PREFER_OUTCOME;
  }
  const response = await z.request({
    method: operation.method, url: `${baseUrl(bundle)}${path}`, params, headers,
    body: operation.method === 'GET' ? undefined : body,
  });
  return response.data;
};

/**
 * perform() of a polling trigger: every page of a list referflow answers oldest first (up to
 * MAX_POLL_PAGES pages of PAGE_SIZE), returned newest first; a list answered newest first
 * (operation.newest_first) is read from its first page only, as it comes. Each item keeps its own
 * stable id, by which Zapier sees what is new.
 */
const performPoll = (operation) => async (z, bundle) => {
  const { path, params } = buildRequest(operation, bundle.inputData);
  const items = [];
  let after = null;
  const pages = operation.newest_first ? 1 : MAX_POLL_PAGES;
  for (let page = 0; page < pages; page += 1) {
    const response = await z.request({
      method: 'GET', url: `${baseUrl(bundle)}${path}`,
      params: { ...params, limit: String(PAGE_SIZE), ...(after ? { after } : {}) },
    });
    items.push(...response.data[operation.output]);
    after = response.data.next_cursor;
    if (!after) {
      break;
    }
  }
  return operation.newest_first ? items : items.reverse();
};

/** perform() for a search: a list (or one object), and "not found" is an empty list. */
const performSearch = (operation) => async (z, bundle) => {
  const { path, params } = buildRequest(operation, bundle.inputData);
  const response = await z.request({
    method: 'GET', url: `${baseUrl(bundle)}${path}`, params, skipThrowForStatus: true,
  });
  if (response.status === 404) {
    return [];
  }
  if (response.status >= 400) {
    throwReferflowError(response, z);
  }
  return operation.output ? response.data[operation.output] : [response.data];
};

const subscribe = async (z, bundle) => {
  const post = () => z.request({
    method: 'POST', url: `${baseUrl(bundle)}/v1/webhooks`, skipThrowForStatus: true,
    body: { url: bundle.targetUrl, events: [bundle.inputData.event] },
  });
  let response = await post();
  const leftover = response.status === 409 && response.data && response.data.code === 'subscription_exists'
    && (response.data.errors || [])[0] && response.data.errors[0].subscription_id;
  if (leftover) {
    // referflow keeps one subscription per endpoint: one of this very target URL was left
    // behind (an unsubscribe that failed), and its secret is no one's any more. Replace it.
    await z.request({ method: 'DELETE', url: `${baseUrl(bundle)}/v1/webhooks/${leftover}`, skipThrowForStatus: true });
    response = await post();
  }
  if (response.status >= 400) {
    throwReferflowError(response, z);
  }
  return response.data; // {id, secret, ...}: Zapier keeps it as bundle.subscribeData
};

const unsubscribe = async (z, bundle) => {
  const response = await z.request({
    method: 'DELETE', url: `${baseUrl(bundle)}/v1/webhooks/${bundle.subscribeData.id}`,
    skipThrowForStatus: true,
  });
  if (response.status >= 400 && response.status !== 404) {
    throwReferflowError(response, z);
  }
  return response.status === 404 ? { id: bundle.subscribeData.id, deleted: true } : response.data;
};

/** Standard Webhooks: HMAC-SHA256 over "id.timestamp.body" with the base64 key of whsec_... */
const verifySignature = (secret, headers, rawBody, now) => {
  // Zapier hands hook headers on as "Http-Webhook-Id"; other callers as "webhook-id".
  const header = (name) => {
    const key = Object.keys(headers || {}).find((k) => [name, `http-${name}`].includes(k.toLowerCase()));
    return key === undefined ? '' : String(headers[key]);
  };
  const id = header('webhook-id');
  const timestamp = header('webhook-timestamp');
  if (!id || !/^\d+$/.test(timestamp) || Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) {
    return false;
  }
  const key = Buffer.from(String(secret).replace(/^whsec_/, ''), 'base64');
  const expected = crypto.createHmac('sha256', key).update(`${id}.${timestamp}.${rawBody}`).digest();
  return header('webhook-signature').split(' ').some((entry) => {
    const [version, signature] = entry.split(',');
    const given = Buffer.from(signature || '', 'base64');
    return version === 'v1' && given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
};

/** perform() of the REST hook: verify the signed delivery, then hand the event on. */
const receive = async (z, bundle) => {
  const raw = bundle.rawRequest || {};
  const content = typeof raw.content === 'string' ? raw.content : JSON.stringify(bundle.cleanedRequest);
  const now = Math.floor(Date.now() / 1000);
  if (!verifySignature(bundle.subscribeData.secret, raw.headers, content, now)) {
    throw new z.errors.Error('The referflow webhook signature did not verify', 'invalid_signature', 401);
  }
  return [JSON.parse(content)];
};

/** performList: the latest events of the chosen type, for sample data while building a Zap. */
const latestEvents = async (z, bundle) => {
  const response = await z.request({
    method: 'GET', url: `${baseUrl(bundle)}/v1/events`,
    params: { type: bundle.inputData.event, limit: '3' },
  });
  return response.data.items;
};

module.exports = {
  addApiKey, raiseForStatus, buildRequest, performCreate, performSearch, performPoll, subscribe, unsubscribe,
  verifySignature, receive, latestEvents,
};
