import type { INodeType, INodeTypeDescription } from 'n8n-workflow';
import { NodeConnectionTypes } from 'n8n-workflow';

/** Generated from node_specs/ by `referflow nodes generate`: do not edit by hand. */
export class Referflow implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Referflow',
		name: 'referflow',
		icon: 'file:referflow.svg',
		group: [
			'transform',
		],
		version: 1,
		subtitle: '={{$parameter["operation"] + ": " + $parameter["resource"]}}',
		description: 'Run referral programs with referflow: links, claims, rewards and reviews',
		defaults: {
			name: 'Referflow',
		},
		inputs: [
			NodeConnectionTypes.Main,
		],
		outputs: [
			NodeConnectionTypes.Main,
		],
		usableAsTool: true,
		credentials: [
			{
				name: 'referflowApi',
				required: true,
			},
		],
		requestDefaults: {
			baseURL: '={{$credentials.baseUrl.replace(/\\/+$/, \'\')}}',
			headers: {
				Accept: 'application/json',
				'Content-Type': 'application/json',
			},
		},
		properties: [
			{
				displayName: 'Resource',
				name: 'resource',
				type: 'options',
				noDataExpression: true,
				options: [
					{
						name: 'Advocate',
						value: 'advocate',
					},
					{
						name: 'Gift Card',
						value: 'giftCard',
					},
					{
						name: 'Link',
						value: 'link',
					},
					{
						name: 'Referral',
						value: 'referral',
					},
					{
						name: 'Review',
						value: 'review',
					},
				],
				default: 'referral',
			},
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				displayOptions: {
					show: {
						resource: [
							'advocate',
						],
					},
				},
				options: [
					{
						name: 'Get',
						value: 'get',
						description: 'Find an advocate by your external ID, with their codes and referral counts',
						action: 'Find advocate',
						routing: {
							request: {
								method: 'GET',
								url: '=/v1/advocates/by-external-id/{{encodeURIComponent($parameter["externalId"])}}',
							},
						},
					},
				],
				default: 'get',
			},
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				displayOptions: {
					show: {
						resource: [
							'giftCard',
						],
					},
				},
				options: [
					{
						name: 'Get',
						value: 'get',
						description: 'Get a gift card by code, with its balance and ledger entries',
						action: 'Find gift card',
						routing: {
							request: {
								method: 'GET',
								url: '=/v1/gift-cards/{{encodeURIComponent($parameter["code"])}}',
							},
						},
					},
					{
						name: 'Issue',
						value: 'issue',
						description: 'Issue the gift cards an approved referral earns (each side exactly once), or a goodwill card to an advocate',
						action: 'Issue gift card',
						routing: {
							request: {
								method: 'POST',
								url: '/v1/gift-cards',
							},
						},
					},
					{
						name: 'Redeem',
						value: 'redeem',
						description: 'Spend part or all of a gift card\'s balance; it can never be overdrawn',
						action: 'Redeem gift card',
						routing: {
							request: {
								method: 'POST',
								url: '=/v1/gift-cards/{{encodeURIComponent($parameter["code"])}}/redeem',
							},
						},
					},
				],
				default: 'get',
			},
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				displayOptions: {
					show: {
						resource: [
							'link',
						],
					},
				},
				options: [
					{
						name: 'Create',
						value: 'create',
						description: 'Create (or return) an advocate\'s personal referral code and share link. The same advocate always gets the same link.',
						action: 'Create referral link',
						routing: {
							request: {
								method: 'POST',
								url: '/v1/links',
							},
						},
					},
				],
				default: 'create',
			},
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
					},
				},
				options: [
					{
						name: 'Approve',
						value: 'approve',
						description: 'Approve a referral waiting in the review queue; it resumes where its qualification puts it',
						action: 'Approve referral in review',
						routing: {
							request: {
								method: 'POST',
								url: '=/v1/referrals/{{encodeURIComponent($parameter["referralId"])}}/approve',
							},
						},
					},
					{
						name: 'Claim',
						value: 'claim',
						description: 'Record that a friend signed up or bought with an advocate\'s code (or click ID). Fraud rules run here; the first claim wins.',
						action: 'Claim referral',
						routing: {
							request: {
								method: 'POST',
								url: '/v1/referrals/claim',
							},
						},
					},
					{
						name: 'Decline',
						value: 'decline',
						description: 'Decline a referral waiting in the review queue, with a polite reason your workflow can send on',
						action: 'Decline referral in review',
						routing: {
							request: {
								method: 'POST',
								url: '=/v1/referrals/{{encodeURIComponent($parameter["referralId"])}}/decline',
							},
						},
					},
					{
						name: 'Get',
						value: 'get',
						description: 'Get a referral by ID, with its status, reasons and full history',
						action: 'Find referral',
						routing: {
							request: {
								method: 'GET',
								url: '=/v1/referrals/{{encodeURIComponent($parameter["referralId"])}}',
							},
						},
					},
					{
						name: 'Qualify',
						value: 'qualify',
						description: 'Report the friend\'s qualifying purchase: the referral is held for the refund window or approved. The event ID is the dedupe key.',
						action: 'Qualify referral',
						routing: {
							request: {
								method: 'POST',
								url: '/v1/referrals/qualify',
							},
						},
					},
					{
						name: 'Reverse',
						value: 'reverse',
						description: 'Reverse a friend\'s referral after a refund or chargeback: unredeemed reward balance is voided and the loss recorded',
						action: 'Reverse referral',
						routing: {
							request: {
								method: 'POST',
								url: '/v1/referrals/reverse',
							},
						},
					},
				],
				default: 'approve',
			},
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				displayOptions: {
					show: {
						resource: [
							'review',
						],
					},
				},
				options: [
					{
						name: 'List',
						value: 'list',
						description: 'List the referrals waiting for review, oldest first',
						action: 'List referrals in review',
						routing: {
							request: {
								method: 'GET',
								url: '/v1/reviews',
							},
							output: {
								postReceive: [
									{
										type: 'rootProperty',
										properties: {
											property: 'items',
										},
									},
								],
							},
						},
					},
				],
				default: 'list',
			},
			{
				displayName: 'Referral ID',
				name: 'referralId',
				type: 'string',
				required: true,
				default: '',
				description: 'The referral\'s ID (ref_...)',
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'approve',
						],
					},
				},
			},
			{
				displayName: 'Reviewer',
				name: 'reviewer',
				type: 'string',
				required: true,
				default: '',
				description: 'Who decides (name or email); recorded as the actor',
				routing: {
					send: {
						type: 'body',
						property: 'reviewer',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'approve',
						],
					},
				},
			},
			{
				displayName: 'Additional Fields',
				name: 'additionalFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'approve',
						],
					},
				},
				options: [
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description: 'Sent as the Idempotency-Key header: repeats with the same key have one effect. Use an ID from the triggering event.',
						routing: {
							request: {
								headers: {
									'Idempotency-Key': '={{$value}}',
								},
							},
						},
					},
					{
						displayName: 'Message',
						name: 'message',
						type: 'string',
						default: '',
						description: 'Decline only: the polite reason your workflow sends on to the friend',
						routing: {
							send: {
								type: 'body',
								property: 'message',
							},
						},
					},
					{
						displayName: 'Note',
						name: 'note',
						type: 'string',
						default: '',
						description: 'Internal note kept in the history',
						routing: {
							send: {
								type: 'body',
								property: 'note',
							},
						},
					},
				],
			},
			{
				displayName: 'Referral Code',
				name: 'code',
				type: 'string',
				default: '',
				description: 'The advocate\'s referral code (or give a Click ID under Additional Fields)',
				routing: {
					send: {
						type: 'body',
						property: 'code',
						value: '={{ $value === \'\' ? undefined : $value }}',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'claim',
						],
					},
				},
			},
			{
				displayName: 'Friend External ID',
				name: 'friendExternalId',
				type: 'string',
				required: true,
				default: '',
				routing: {
					send: {
						type: 'body',
						property: 'friend.external_id',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'claim',
						],
					},
				},
			},
			{
				displayName: 'Friend Email',
				name: 'friendEmail',
				type: 'string',
				required: true,
				default: '',
				routing: {
					send: {
						type: 'body',
						property: 'friend.email',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'claim',
						],
					},
				},
			},
			{
				displayName: 'Additional Fields',
				name: 'additionalFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'claim',
						],
					},
				},
				options: [
					{
						displayName: 'Click ID',
						name: 'clickId',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'click_id',
							},
						},
					},
					{
						displayName: 'Device ID',
						name: 'contextDeviceId',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'context.device_id',
							},
						},
					},
					{
						displayName: 'Existing Customer',
						name: 'contextExistingCustomer',
						type: 'boolean',
						default: false,
						routing: {
							send: {
								type: 'body',
								property: 'context.existing_customer',
							},
						},
					},
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description: 'Sent as the Idempotency-Key header: repeats with the same key have one effect. Use an ID from the triggering event.',
						routing: {
							request: {
								headers: {
									'Idempotency-Key': '={{$value}}',
								},
							},
						},
					},
					{
						displayName: 'IP Address',
						name: 'contextIp',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'context.ip',
							},
						},
					},
					{
						displayName: 'Payment Fingerprint',
						name: 'contextPaymentFingerprint',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'context.payment_fingerprint',
							},
						},
					},
					{
						displayName: 'Purchased At',
						name: 'contextPurchasedAt',
						type: 'string',
						default: '',
						placeholder: '2026-11-20T10:00:00Z',
						description: 'When the friend already bought, for a claim made after checkout (late claim)',
						routing: {
							send: {
								type: 'body',
								property: 'context.purchased_at',
							},
						},
					},
					{
						displayName: 'User Agent',
						name: 'contextUserAgent',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'context.user_agent',
							},
						},
					},
				],
			},
			{
				displayName: 'Advocate External ID',
				name: 'advocateExternalId',
				type: 'string',
				required: true,
				default: '',
				description: 'Your ID for the advocate, such as the Stripe or Shopify customer ID',
				routing: {
					send: {
						type: 'body',
						property: 'advocate.external_id',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'link',
						],
						operation: [
							'create',
						],
					},
				},
			},
			{
				displayName: 'Advocate Email',
				name: 'advocateEmail',
				type: 'string',
				required: true,
				default: '',
				routing: {
					send: {
						type: 'body',
						property: 'advocate.email',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'link',
						],
						operation: [
							'create',
						],
					},
				},
			},
			{
				displayName: 'Additional Fields',
				name: 'additionalFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: {
					show: {
						resource: [
							'link',
						],
						operation: [
							'create',
						],
					},
				},
				options: [
					{
						displayName: 'Advocate Name',
						name: 'advocateName',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'advocate.name',
							},
						},
					},
					{
						displayName: 'Device ID',
						name: 'contextDeviceId',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'context.device_id',
							},
						},
					},
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description: 'Sent as the Idempotency-Key header: repeats with the same key have one effect. Use an ID from the triggering event.',
						routing: {
							request: {
								headers: {
									'Idempotency-Key': '={{$value}}',
								},
							},
						},
					},
					{
						displayName: 'IP Address',
						name: 'contextIp',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'context.ip',
							},
						},
					},
					{
						displayName: 'Payment Fingerprint',
						name: 'contextPaymentFingerprint',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'context.payment_fingerprint',
							},
						},
					},
					{
						displayName: 'Vanity Code',
						name: 'vanityCode',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'vanity_code',
							},
						},
					},
				],
			},
			{
				displayName: 'Referral ID',
				name: 'referralId',
				type: 'string',
				required: true,
				default: '',
				description: 'The referral\'s ID (ref_...)',
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'decline',
						],
					},
				},
			},
			{
				displayName: 'Reviewer',
				name: 'reviewer',
				type: 'string',
				required: true,
				default: '',
				description: 'Who decides (name or email); recorded as the actor',
				routing: {
					send: {
						type: 'body',
						property: 'reviewer',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'decline',
						],
					},
				},
			},
			{
				displayName: 'Additional Fields',
				name: 'additionalFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'decline',
						],
					},
				},
				options: [
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description: 'Sent as the Idempotency-Key header: repeats with the same key have one effect. Use an ID from the triggering event.',
						routing: {
							request: {
								headers: {
									'Idempotency-Key': '={{$value}}',
								},
							},
						},
					},
					{
						displayName: 'Message',
						name: 'message',
						type: 'string',
						default: '',
						description: 'Decline only: the polite reason your workflow sends on to the friend',
						routing: {
							send: {
								type: 'body',
								property: 'message',
							},
						},
					},
					{
						displayName: 'Note',
						name: 'note',
						type: 'string',
						default: '',
						description: 'Internal note kept in the history',
						routing: {
							send: {
								type: 'body',
								property: 'note',
							},
						},
					},
				],
			},
			{
				displayName: 'Advocate External ID',
				name: 'externalId',
				type: 'string',
				required: true,
				default: '',
				description: 'Your ID for the advocate',
				displayOptions: {
					show: {
						resource: [
							'advocate',
						],
						operation: [
							'get',
						],
					},
				},
			},
			{
				displayName: 'Gift Card Code',
				name: 'code',
				type: 'string',
				required: true,
				default: '',
				description: 'The gift card\'s code',
				displayOptions: {
					show: {
						resource: [
							'giftCard',
						],
						operation: [
							'get',
						],
					},
				},
			},
			{
				displayName: 'Referral ID',
				name: 'referralId',
				type: 'string',
				required: true,
				default: '',
				description: 'The referral\'s ID (ref_...)',
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'get',
						],
					},
				},
			},
			{
				displayName: 'Referral ID',
				name: 'referralId',
				type: 'string',
				default: '',
				description: 'The approved referral (or give Advocate ID and Amount for a goodwill card)',
				routing: {
					send: {
						type: 'body',
						property: 'referral_id',
						value: '={{ $value === \'\' ? undefined : $value }}',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'giftCard',
						],
						operation: [
							'issue',
						],
					},
				},
			},
			{
				displayName: 'Additional Fields',
				name: 'additionalFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: {
					show: {
						resource: [
							'giftCard',
						],
						operation: [
							'issue',
						],
					},
				},
				options: [
					{
						displayName: 'Advocate ID',
						name: 'advocateId',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'advocate_id',
							},
						},
					},
					{
						displayName: 'Amount',
						name: 'amount',
						type: 'number',
						default: 0,
						typeOptions: {
							numberPrecision: 0,
						},
						description: 'Integer minor units (cents)',
						routing: {
							send: {
								type: 'body',
								property: 'amount',
							},
						},
					},
					{
						displayName: 'Currency',
						name: 'currency',
						type: 'string',
						default: '',
						description: 'ISO 4217 currency code, uppercase',
						routing: {
							send: {
								type: 'body',
								property: 'currency',
							},
						},
					},
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description: 'Sent as the Idempotency-Key header: repeats with the same key have one effect. Use an ID from the triggering event.',
						routing: {
							request: {
								headers: {
									'Idempotency-Key': '={{$value}}',
								},
							},
						},
					},
					{
						displayName: 'Note',
						name: 'note',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'note',
							},
						},
					},
					{
						displayName: 'Side',
						name: 'side',
						type: 'options',
						options: [
							{
								name: 'Advocate',
								value: 'advocate',
							},
							{
								name: 'Both',
								value: 'both',
							},
							{
								name: 'Friend',
								value: 'friend',
							},
						],
						default: 'advocate',
						routing: {
							send: {
								type: 'body',
								property: 'side',
							},
						},
					},
				],
			},
			{
				displayName: 'Limit',
				name: 'limit',
				type: 'number',
				default: 50,
				typeOptions: {
					numberPrecision: 0,
				},
				description: 'Max number of results to return',
				routing: {
					send: {
						type: 'query',
						property: 'limit',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'review',
						],
						operation: [
							'list',
						],
					},
				},
			},
			{
				displayName: 'Referral ID',
				name: 'referralId',
				type: 'string',
				default: '',
				routing: {
					send: {
						type: 'body',
						property: 'referral_id',
						value: '={{ $value === \'\' ? undefined : $value }}',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'qualify',
						],
					},
				},
			},
			{
				displayName: 'Friend External ID',
				name: 'friendExternalId',
				type: 'string',
				default: '',
				description: 'Your ID for the friend (or give the Referral ID)',
				routing: {
					send: {
						type: 'body',
						property: 'friend_external_id',
						value: '={{ $value === \'\' ? undefined : $value }}',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'qualify',
						],
					},
				},
			},
			{
				displayName: 'Event ID',
				name: 'eventId',
				type: 'string',
				required: true,
				default: '',
				description: 'External event ID, the dedupe key',
				routing: {
					send: {
						type: 'body',
						property: 'event.id',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'qualify',
						],
					},
				},
			},
			{
				displayName: 'Event Type',
				name: 'eventType',
				type: 'string',
				required: true,
				default: '',
				routing: {
					send: {
						type: 'body',
						property: 'event.type',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'qualify',
						],
					},
				},
			},
			{
				displayName: 'Event Amount',
				name: 'eventAmount',
				type: 'number',
				required: true,
				default: 0,
				typeOptions: {
					numberPrecision: 0,
				},
				description: 'Integer minor units (cents)',
				routing: {
					send: {
						type: 'body',
						property: 'event.amount',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'qualify',
						],
					},
				},
			},
			{
				displayName: 'Event Currency',
				name: 'eventCurrency',
				type: 'string',
				required: true,
				default: '',
				description: 'ISO 4217 currency code, uppercase',
				routing: {
					send: {
						type: 'body',
						property: 'event.currency',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'qualify',
						],
					},
				},
			},
			{
				displayName: 'Event Occurred At',
				name: 'eventOccurredAt',
				type: 'string',
				required: true,
				default: '',
				placeholder: '2026-11-20T10:00:00Z',
				description: 'RFC 3339 timestamp, UTC',
				routing: {
					send: {
						type: 'body',
						property: 'event.occurred_at',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'qualify',
						],
					},
				},
			},
			{
				displayName: 'Additional Fields',
				name: 'additionalFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'qualify',
						],
					},
				},
				options: [
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description: 'Sent as the Idempotency-Key header: repeats with the same key have one effect. Use an ID from the triggering event.',
						routing: {
							request: {
								headers: {
									'Idempotency-Key': '={{$value}}',
								},
							},
						},
					},
				],
			},
			{
				displayName: 'Gift Card Code',
				name: 'code',
				type: 'string',
				required: true,
				default: '',
				description: 'The gift card\'s code',
				displayOptions: {
					show: {
						resource: [
							'giftCard',
						],
						operation: [
							'redeem',
						],
					},
				},
			},
			{
				displayName: 'Amount',
				name: 'amount',
				type: 'number',
				required: true,
				default: 0,
				typeOptions: {
					numberPrecision: 0,
				},
				description: 'Integer minor units (cents)',
				routing: {
					send: {
						type: 'body',
						property: 'amount',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'giftCard',
						],
						operation: [
							'redeem',
						],
					},
				},
			},
			{
				displayName: 'Currency',
				name: 'currency',
				type: 'string',
				required: true,
				default: '',
				description: 'ISO 4217 currency code, uppercase',
				routing: {
					send: {
						type: 'body',
						property: 'currency',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'giftCard',
						],
						operation: [
							'redeem',
						],
					},
				},
			},
			{
				displayName: 'Additional Fields',
				name: 'additionalFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: {
					show: {
						resource: [
							'giftCard',
						],
						operation: [
							'redeem',
						],
					},
				},
				options: [
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description: 'Sent as the Idempotency-Key header: repeats with the same key have one effect. Use an ID from the triggering event.',
						routing: {
							request: {
								headers: {
									'Idempotency-Key': '={{$value}}',
								},
							},
						},
					},
					{
						displayName: 'Reference',
						name: 'reference',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'reference',
							},
						},
					},
				],
			},
			{
				displayName: 'Reason',
				name: 'reason',
				type: 'options',
				required: true,
				options: [
					{
						name: 'Chargeback',
						value: 'chargeback',
					},
					{
						name: 'Fraud',
						value: 'fraud',
					},
					{
						name: 'Other',
						value: 'other',
					},
					{
						name: 'Refund',
						value: 'refund',
					},
				],
				default: 'chargeback',
				routing: {
					send: {
						type: 'body',
						property: 'reason',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'reverse',
						],
					},
				},
			},
			{
				displayName: 'Friend External ID',
				name: 'friendExternalId',
				type: 'string',
				required: true,
				default: '',
				routing: {
					send: {
						type: 'body',
						property: 'friend_external_id',
					},
				},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'reverse',
						],
					},
				},
			},
			{
				displayName: 'Additional Fields',
				name: 'additionalFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: {
					show: {
						resource: [
							'referral',
						],
						operation: [
							'reverse',
						],
					},
				},
				options: [
					{
						displayName: 'Event Amount',
						name: 'eventAmount',
						type: 'number',
						default: 0,
						typeOptions: {
							numberPrecision: 0,
						},
						description: 'Integer minor units (cents)',
						routing: {
							send: {
								type: 'body',
								property: 'event.amount',
							},
						},
					},
					{
						displayName: 'Event Currency',
						name: 'eventCurrency',
						type: 'string',
						default: '',
						description: 'ISO 4217 currency code, uppercase',
						routing: {
							send: {
								type: 'body',
								property: 'event.currency',
							},
						},
					},
					{
						displayName: 'Event ID',
						name: 'eventId',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'event.id',
							},
						},
					},
					{
						displayName: 'Event Occurred At',
						name: 'eventOccurredAt',
						type: 'string',
						default: '',
						placeholder: '2026-11-20T10:00:00Z',
						description: 'RFC 3339 timestamp, UTC',
						routing: {
							send: {
								type: 'body',
								property: 'event.occurred_at',
							},
						},
					},
					{
						displayName: 'Event Type',
						name: 'eventType',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'event.type',
							},
						},
					},
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description: 'Sent as the Idempotency-Key header: repeats with the same key have one effect. Use an ID from the triggering event.',
						routing: {
							request: {
								headers: {
									'Idempotency-Key': '={{$value}}',
								},
							},
						},
					},
					{
						displayName: 'Note',
						name: 'note',
						type: 'string',
						default: '',
						routing: {
							send: {
								type: 'body',
								property: 'note',
							},
						},
					},
				],
			},
		],
	};
}
