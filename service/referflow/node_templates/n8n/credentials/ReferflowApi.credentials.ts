import type {
	IAuthenticateGeneric,
	ICredentialTestRequest,
	ICredentialType,
	Icon,
	INodeProperties,
} from 'n8n-workflow';

export class ReferflowApi implements ICredentialType {
	name = 'referflowApi';

	displayName = 'Referflow API';

	icon: Icon = { light: 'file:referflow.svg', dark: 'file:referflow.dark.svg' };

	documentationUrl = '{{DOCUMENTATION_URL}}';

	properties: INodeProperties[] = [
		{
			displayName: 'Base URL',
			name: 'baseUrl',
			type: 'string',
			default: '',
			placeholder: 'https://refer.example.com',
			description: 'Where your referflow service runs, e.g. https://refer.example.com',
			required: true,
		},
		{
			displayName: 'API Key',
			name: 'apiKey',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			description: 'A program API key: run referflow keys create --program PROGRAM_ID on the referflow server',
			required: true,
		},
	];

	authenticate: IAuthenticateGeneric = {
		type: 'generic',
		properties: {
			headers: {
				Authorization: '=Bearer {{$credentials.apiKey}}',
			},
		},
	};

	test: ICredentialTestRequest = {
		request: {
			baseURL: '={{$credentials.baseUrl}}',
			url: '/v1/program',
		},
	};
}
