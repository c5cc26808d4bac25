// V8's compile cache for the `persona` command: Node keeps the compiled code of each module it
// loads (the command's bundle and its chunks, ssh2's files) and the next start reads it instead
// of parsing and compiling the source again, about half of the time ssh2 alone takes to load.
// Plain JavaScript, so that cli/bin.js can call it before anything else is loaded.
import module from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where the cache lives: NODE_COMPILE_CACHE when the user set it (Node reads it itself), else
 * `persona/compile-cache` under the user's cache directory ($XDG_CACHE_HOME, or ~/.cache).
 */
export function compileCacheDir(env = process.env) {
  if (env.NODE_COMPILE_CACHE) return env.NODE_COMPILE_CACHE;
  const base = personaCacheDir(env);
  return base === undefined ? undefined : join(base, 'compile-cache');
}

/** `persona` under the user's cache directory ($XDG_CACHE_HOME, or ~/.cache); undefined without a home. */
export function personaCacheDir(env = process.env) {
  let base = env.XDG_CACHE_HOME;
  if (!base?.startsWith('/')) {
    let home = '';
    try {
      home = homedir();
    } catch {
      // No home directory (a user without a passwd entry and no HOME): Node's default below.
    }
    if (!home) return undefined;
    base = join(home, '.cache');
  }
  return join(base, 'persona');
}

/**
 * Turns the cache on, for the modules loaded after this call. A directory that cannot be created
 * or written leaves Node's own default (in the temporary directory); one that fails too leaves
 * the command without a cache, never without its start. Returns the directory in use, if any.
 */
export function enableCompileCache(env = process.env) {
  if (typeof module.enableCompileCache !== 'function') return undefined; // Node before 22.1
  const { ENABLED, ALREADY_ENABLED } = module.constants.compileCacheStatus;
  const on = (result) => result.status === ENABLED || result.status === ALREADY_ENABLED;
  try {
    const dir = compileCacheDir(env);
    if (dir !== undefined && on(module.enableCompileCache(dir))) return module.getCompileCacheDir();
    if (on(module.enableCompileCache())) return module.getCompileCacheDir();
  } catch {
    // An option Node refuses: start without the cache.
  }
  return undefined;
}
