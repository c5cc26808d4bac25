// Types of cli/compile-cache.js, which is plain JavaScript so that cli/bin.js can load it first.
export declare function compileCacheDir(env?: NodeJS.ProcessEnv): string | undefined;
export declare function personaCacheDir(env?: NodeJS.ProcessEnv): string | undefined;
export declare function enableCompileCache(env?: NodeJS.ProcessEnv): string | undefined;
