/**
 * `npm run scan`: n8n's community-package scanner (@n8n/scan-community-package), offline, on exactly
 * what `npm publish` uploads. Its CLI downloads a published version from npm and its attested
 * source; here `npm pack` makes the tarball, it is unpacked into a temporary folder, and the
 * scanner's own `analyzePackage` lints:
 *   - the source (this folder), with the scanner's source patterns (package.json, nodes/, credentials/),
 *   - the tarball's compiled .js files and package.json, as the scanner's tarball leg does,
 *   - every .js, .ts and .json file of the tarball (analyzePackage's defaults).
 * Exits 1 on any finding: the scanner's errors, and its warnings too. Also checks that the tarball
 * holds every node and credential package.json lists, their icons, README.md and LICENSE.md.
 * Run `npm run build` first.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ESLint } from 'eslint';
import {
	SOURCE_FILE_PATTERNS,
	analyzePackage,
	buildScanConfig,
} from '@n8n/scan-community-package/scanner/scanner.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(path.join(tmpdir(), 'referflow-scan-'));
const problems = [];

/** The scanner lints with errorOnUnmatchedPattern; a pattern that matches nothing is no finding. */
async function warningsOf(dir, patterns) {
	const eslint = new ESLint({
		cwd: dir,
		allowInlineConfig: false,
		overrideConfigFile: true,
		overrideConfig: await buildScanConfig(),
		errorOnUnmatchedPattern: false,
	});
	const results = await eslint.lintFiles(patterns);
	if (!results.some((result) => result.warningCount > 0)) {
		return '';
	}
	return (await eslint.loadFormatter('stylish')).format(results);
}

async function scan(label, dir, patterns) {
	const result = await analyzePackage(dir, patterns);
	const warnings = result.passed ? await warningsOf(dir, patterns ?? ['**/*.js', '**/*.ts', '**/*.json']) : '';
	if (!result.passed || warnings) {
		problems.push(`${label}: ${result.message ?? 'ESLint warnings found'}\n${result.details ?? warnings}`);
	} else {
		console.log(`ok  ${label}`);
	}
}

try {
	const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root })
		.toString()
		.trim()
		.split('\n')
		.pop();
	const unpacked = path.join(work, 'package');
	mkdirSync(unpacked);
	execFileSync('tar', ['-xzf', path.join(work, tarball), '-C', unpacked, '--strip-components=1']);
	console.log(`scanning ${tarball} (${readdirSync(unpacked).join(', ')})`);

	await scan('source (package.json, nodes/, credentials/)', root, SOURCE_FILE_PATTERNS);
	await scan('tarball (compiled .js, package.json)', unpacked, ['**/*.js', 'package.json']);
	await scan('tarball (every .js, .ts and .json file)', unpacked, undefined);

	const manifest = JSON.parse(readFileSync(path.join(unpacked, 'package.json'), 'utf8'));
	const listed = [...manifest.n8n.nodes, ...manifest.n8n.credentials];
	const missing = ['README.md', 'LICENSE.md', ...listed].filter((file) => !existsSync(path.join(unpacked, file)));
	for (const file of listed) {
		const source = readFileSync(path.join(root, file.replace(/^dist\//, '').replace(/\.js$/, '.ts')), 'utf8');
		for (const [, icon] of source.matchAll(/'file:([^']+)'/g)) {
			const shipped = path.join(path.dirname(file), icon);
			if (!existsSync(path.join(unpacked, shipped))) {
				missing.push(shipped);
			}
		}
	}
	if (missing.length > 0) {
		problems.push(`the tarball lacks ${missing.join(', ')} (run npm run build first)`);
	} else {
		console.log(`ok  the tarball holds ${listed.length} nodes and credentials, their icons, README.md, LICENSE.md`);
	}
} finally {
	rmSync(work, { recursive: true, force: true });
}

if (problems.length > 0) {
	console.error(`\n${problems.join('\n')}`);
	process.exit(1);
}
console.log('n8n community-package scan: no findings');
