// The YAML route of the document reader, the only part of it that imports the YAML parser: YAML
// documents, and JSON that needs its scrutiny (duplicate or forbidden keys), with every problem
// named and positioned. readDocumentText (document-text.ts) loads it only when a document needs
// it; io.ts's synchronous reader imports it outright.
import {
  CST,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  type Node,
  parseDocument,
} from 'yaml';
import { formatPath, InvalidInputError, type Issue } from '../errors.js';
import {
  DEPTH_MESSAGE,
  DOCUMENT_LIMITS,
  FORBIDDEN_KEYS,
  type Located,
  type ParseOptions,
  positionOf,
} from './document-text.js';

// The core schema's own tags, which say no more than the plain value does: any other tag is
// refused, `!!js/function` and the like (read as strings, with a warning, by the parser) included.
const PLAIN_TAGS = new Set(
  ['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`),
);

const stripPosition = (message: string): string =>
  message.replace(/ at line \d+, column \d+:[\s\S]*$/, '').trim();

// The YAML composer recurses once per level and runs out of stack near a thousand levels
// (and an unclosed `[` ten thousand deep once exhausted the heap as well), so nesting is
// bounded from the tokens before composing. The exact limit is checked on the composed nodes.
const PRESCAN_DEPTH = 4 * DOCUMENT_LIMITS.maxDepth;

/**
 * The offset of the first token nested deeper than PRESCAN_DEPTH, from the lexer alone (it
 * does not recurse): flow brackets are counted exactly, block collections by the columns of
 * their indicators (`-`, `?`, and the key before `:`).
 */
export function tooDeepAt(text: string): number | undefined {
  const block: { col: number; kind: 'seq' | 'map' }[] = [];
  let flow = 0;
  let offset = 0;
  let col = 0;
  let keyCol: number | undefined;
  const open = (at: number, kind: 'seq' | 'map') => {
    for (;;) {
      const top = block[block.length - 1];
      if (top === undefined || top.col < at) break;
      if (top.col === at && top.kind === kind) return;
      // A sequence may sit at its parent key's column; a key there ends that sequence.
      if (top.col === at && kind === 'seq') break;
      block.pop();
    }
    block.push({ col: at, kind });
  };
  for (const token of new Lexer().lex(text)) {
    // The lexer's own markers (document, scalar, flow end) are not source text.
    if (token === '\x02' || token === '\x1f' || token === '\x18') continue;
    const type = CST.tokenType(token);
    if (type === 'flow-map-start' || type === 'flow-seq-start') flow++;
    else if (type === 'flow-map-end' || type === 'flow-seq-end') flow = Math.max(0, flow - 1);
    else if (flow === 0 && (type === 'seq-item-ind' || type === 'explicit-key-ind')) {
      open(col, type === 'seq-item-ind' ? 'seq' : 'map');
      keyCol = undefined;
    } else if (flow === 0 && type === 'map-value-ind') {
      open(keyCol ?? col, 'map');
      keyCol = undefined;
    } else if (type === 'doc-start') block.length = 0;
    if (block.length + flow > PRESCAN_DEPTH) return offset;
    if (keyCol === undefined && type !== 'space' && type !== 'newline' && type !== 'comment') keyCol = col;
    const newline = token.lastIndexOf('\n');
    if (newline === -1) col += token.length;
    else {
      col = token.length - newline - 1;
      keyCol = undefined;
    }
    offset += token.length;
  }
  return undefined;
}

export function parseYamlText(text: string, options: ParseOptions): Located {
  const source = options.source ?? 'document';
  const refuseDepth = (offset: number, cause?: unknown): never => {
    throw new InvalidInputError(
      `${source} is not a valid document`,
      [{ path: '', message: DEPTH_MESSAGE, ...positionOf(text, offset) }],
      { source, cause },
    );
  };
  const deep = tooDeepAt(text);
  if (deep !== undefined) refuseDepth(deep);
  const lineCounter = new LineCounter();
  let doc: ReturnType<typeof parseDocument>;
  try {
    doc = parseDocument(text, { lineCounter, uniqueKeys: false, strict: true, prettyErrors: true });
  } catch (cause) {
    if (cause instanceof RangeError) refuseDepth(0, cause);
    throw cause;
  }
  const at = (offset: number | undefined) => {
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  const issues: Issue[] = doc.errors.map((e) => ({
    path: '',
    message: stripPosition(e.message),
    ...(e.linePos ? { line: e.linePos[0].line, column: e.linePos[0].col } : {}),
  }));

  // Heights of the nodes walked so far, and the collections enclosing the current one: an
  // alias adds its target's height where it is used, and an alias inside its own target would
  // make a value that contains itself.
  const heights = new Map<unknown, number>();
  const enclosing = new Set<unknown>();
  const walk = (node: unknown, path: PropertyKey[], depth: number): number => {
    if (node === null || node === undefined) return 0;
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (enclosing.has(target)) {
        issues.push({
          path: formatPath(path),
          message: `alias *${node.source} refers to a node that contains it`,
          ...at(node.range?.[0]),
        });
        return 0;
      }
      const height = heights.get(target) ?? 0;
      if (depth + height - 1 > DOCUMENT_LIMITS.maxDepth) {
        issues.push({ path: formatPath(path), message: DEPTH_MESSAGE, ...at(node.range?.[0]) });
      }
      return height;
    }
    const n = node as Node;
    if (depth > DOCUMENT_LIMITS.maxDepth && (isMap(n) || isSeq(n))) {
      issues.push({
        path: formatPath(path),
        message: DEPTH_MESSAGE,
        ...at(n.range?.[0]),
      });
      return 0;
    }
    let below = 0;
    enclosing.add(n);
    if (n.tag !== undefined && !PLAIN_TAGS.has(n.tag)) {
      issues.push({ path: formatPath(path), message: `tag ${n.tag} is not allowed`, ...at(n.range?.[0]) });
    }
    if (isMap(n)) {
      const seen = new Map<string, number | undefined>();
      for (const item of n.items) {
        if (!isPair(item)) continue;
        const keyNode = item.key;
        if (!isScalar(keyNode)) {
          issues.push({
            path: formatPath(path),
            message: 'keys must be plain strings',
            ...at((keyNode as Node | null)?.range?.[0]),
          });
          continue;
        }
        const key = String(keyNode.value);
        const keyAt = at(keyNode.range?.[0]);
        if (FORBIDDEN_KEYS.has(key)) {
          issues.push({ path: formatPath([...path, key]), message: `key "${key}" is not allowed`, ...keyAt });
        }
        if (seen.has(key)) {
          const first = seen.get(key);
          issues.push({
            path: formatPath([...path, key]),
            message: `duplicate key "${key}"${first === undefined ? '' : ` (first at line ${first})`}`,
            ...keyAt,
          });
        } else {
          seen.set(key, keyAt?.line);
        }
        below = Math.max(below, walk(item.value, [...path, key], depth + 1));
      }
    } else if (isSeq(n)) {
      n.items.forEach((item, i) => {
        below = Math.max(below, walk(item, [...path, i], depth + 1));
      });
    }
    enclosing.delete(n);
    const height = isMap(n) || isSeq(n) ? below + 1 : 0;
    heights.set(n, height);
    return height;
  };
  walk(doc.contents, [], 1);

  if (issues.length > 0) throw new InvalidInputError(`${source} is not a valid document`, issues, { source });

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: DOCUMENT_LIMITS.maxAliasCount });
  } catch (cause) {
    throw new InvalidInputError(
      `${source} is not a valid document`,
      [
        {
          path: '',
          message: `aliases expand to more than ${DOCUMENT_LIMITS.maxAliasCount} nodes; expand them in the document instead`,
        },
      ],
      { cause, source },
    );
  }

  const locate = (path: readonly PropertyKey[]) => {
    // A missing field has no node: point at the closest ancestor that exists.
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as unknown[], true) as Node | undefined;
      const offset = node?.range?.[0];
      if (offset !== undefined) return at(offset);
    }
    return undefined;
  };
  return { value, locate };
}
