/**
 * What a caller's search arguments compile to, checked before any path is decided: a name matcher
 * (glob or substring, under the caller bounds) and a regular expression for grep. Tools get them
 * here, with the rest of the file API, and never from the file layer.
 */
export { compilePattern } from '../fs/regex.js';
export { callerGlob, nameMatcher } from '../fs/search.js';
