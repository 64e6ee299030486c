import { createHmac, timingSafeEqual } from 'crypto';
import type {
	IDataObject,
	IHookFunctions,
	IHttpRequestMethods,
	INodeType,
	INodeTypeDescription,
	IWebhookFunctions,
	IWebhookResponseData,
} from 'n8n-workflow';
import { NodeConnectionTypes } from 'n8n-workflow';

const TOLERANCE_SECONDS = 300;

async function referflowRequest(
	this: IHookFunctions,
	method: IHttpRequestMethods,
	path: string,
	body?: IDataObject,
): Promise<IDataObject> {
	const credentials = await this.getCredentials('referflowApi');
	const baseUrl = String(credentials.baseUrl).replace(/\/+$/, '');
	return (await this.helpers.httpRequestWithAuthentication.call(this, 'referflowApi', {
		method,
		url: `${baseUrl}${path}`,
		body,
		json: true,
	})) as IDataObject;
}

/** Standard Webhooks: HMAC-SHA256 over "id.timestamp.body" with the base64 key of whsec_... */
export function verifySignature(
	secret: string,
	headers: Record<string, string | string[] | undefined>,
	rawBody: string,
	now: number,
): boolean {
	const id = String(headers['webhook-id'] ?? '');
	const timestamp = String(headers['webhook-timestamp'] ?? '');
	const signatures = String(headers['webhook-signature'] ?? '');
	if (!id || !/^\d+$/.test(timestamp) || Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) {
		return false;
	}
	const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
	const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${rawBody}`).digest();
	return signatures.split(' ').some((entry) => {
		const [version, signature] = entry.split(',');
		const given = Buffer.from(signature ?? '', 'base64');
		return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
	});
}

export class ReferflowTrigger implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Referflow Trigger',
		name: 'referflowTrigger',
		icon: 'file:referflow.svg',
		group: ['trigger'],
		version: 1,
		subtitle: '={{$parameter["events"].join(", ")}}',
		description: 'Starts when referflow sends one of the chosen events (signed webhooks; the subscription is created and deleted for you)',
		defaults: {
			name: 'Referflow Trigger',
		},
		inputs: [],
		outputs: [NodeConnectionTypes.Main],
		credentials: [
			{
				name: 'referflowApi',
				required: true,
			},
		],
		webhooks: [
			{
				name: 'default',
				httpMethod: 'POST',
				responseMode: 'onReceived',
				path: 'webhook',
			},
		],
		properties: [
			{
				displayName: 'Events',
				name: 'events',
				type: 'multiOptions',
				required: true,
				default: [],
				description: 'The referflow events that start the workflow',
				options: [
					{
						name: 'advocate.link_created',
						value: 'advocate.link_created',
					},
					{
						name: 'advocate.tier_changed',
						value: 'advocate.tier_changed',
					},
					{
						name: 'referral.approved',
						value: 'referral.approved',
					},
					{
						name: 'referral.claimed',
						value: 'referral.claimed',
					},
					{
						name: 'referral.in_review',
						value: 'referral.in_review',
					},
					{
						name: 'referral.qualified',
						value: 'referral.qualified',
					},
					{
						name: 'referral.rejected',
						value: 'referral.rejected',
					},
					{
						name: 'referral.reversed',
						value: 'referral.reversed',
					},
					{
						name: 'referral.rewarded',
						value: 'referral.rewarded',
					},
					{
						name: 'reward.failed',
						value: 'reward.failed',
					},
					{
						name: 'reward.issued',
						value: 'reward.issued',
					},
					{
						name: 'reward.redeemed',
						value: 'reward.redeemed',
					},
				],
			},
		],
	};

	webhookMethods = {
		default: {
			async checkExists(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node');
				if (data.subscriptionId === undefined) {
					return false;
				}
				const url = this.getNodeWebhookUrl('default');
				const list = await referflowRequest.call(this, 'GET', '/v1/webhooks');
				const items = (list.items ?? []) as IDataObject[];
				if (items.some((item) => item.id === data.subscriptionId && item.url === url && item.active)) {
					return true;
				}
				delete data.subscriptionId;
				delete data.secret;
				return false;
			},
			async create(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node');
				const subscription = await referflowRequest.call(this, 'POST', '/v1/webhooks', {
					url: this.getNodeWebhookUrl('default'),
					events: this.getNodeParameter('events') as string[],
				});
				data.subscriptionId = subscription.id;
				data.secret = subscription.secret;
				return true;
			},
			async delete(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node');
				if (data.subscriptionId !== undefined) {
					try {
						await referflowRequest.call(this, 'DELETE', `/v1/webhooks/${String(data.subscriptionId)}`);
					} catch (error) {
						if ((error as { httpCode?: string }).httpCode !== '404') {
							return false;
						}
					}
				}
				delete data.subscriptionId;
				delete data.secret;
				return true;
			},
		},
	};

	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		const request = this.getRequestObject() as unknown as {
			headers: Record<string, string | string[] | undefined>;
			rawBody?: Buffer;
			body: IDataObject;
		};
		const secret = this.getWorkflowStaticData('node').secret as string | undefined;
		const raw = request.rawBody ? request.rawBody.toString('utf8') : JSON.stringify(request.body);
		if (!secret) {
			const response = this.getResponseObject();
			response.status(401).json({
				code: 'not_subscribed',
				message: 'this trigger holds no signing secret: deactivate and activate the workflow',
			});
			return { noWebhookResponse: true };
		}
		if (!verifySignature(secret, request.headers, raw, Math.floor(Date.now() / 1000))) {
			const response = this.getResponseObject();
			response.status(401).json({ code: 'invalid_signature', message: 'signature did not verify' });
			return { noWebhookResponse: true };
		}
		return { workflowData: [this.helpers.returnJsonArray([request.body])] };
	}
}
