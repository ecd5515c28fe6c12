/**
 * A small SQL lexer for the two questions SQLite's API cannot answer for us.
 *
 * 1. What follows the first statement of a string? `prepare` compiles only the first statement and
 *    reports its text; if anything but whitespace, comments and semicolons follows, the caller sent
 *    several statements in one string, which the store refuses rather than silently drop.
 * 2. Does a table declare a deferred foreign key? SQLite checks those only at COMMIT, which for the
 *    leader's speculative transaction comes after Raft has committed the entry: too late to refuse.
 *    The schema SQL is scanned as tokens (literals, quoted names and comments skipped), never with a
 *    regular expression over raw text.
 *
 * The lexer follows SQLite's tokenizer for the token kinds it needs: whitespace is exactly space, tab,
 * newline, form feed and carriage return; an unterminated block comment runs to the end of input.
 */

const whitespace = new Set([" ", "\t", "\n", "\f", "\r"]);

type Token = { readonly kind: "word" | "other"; readonly text: string };

/** Where the run of whitespace and comments starting at `start` ends. */
function skipBlank(text: string, start: number): number {
  let position = start;
  while (position < text.length) {
    const character = text[position]!;
    if (whitespace.has(character)) {
      position++;
    } else if (text.startsWith("--", position)) {
      const end = text.indexOf("\n", position);
      position = end === -1 ? text.length : end + 1;
    } else if (text.startsWith("/*", position)) {
      const end = text.indexOf("*/", position + 2);
      position = end === -1 ? text.length : end + 2;
    } else {
      break;
    }
  }
  return position;
}

/** True when `text` holds only whitespace, comments and semicolons: no further statement. */
export function sqlRemainderIsBlank(text: string): boolean {
  let position = 0;
  while (position < text.length) {
    position = skipBlank(text, position);
    if (position >= text.length) return true;
    if (text[position] !== ";") return false;
    position++;
  }
  return true;
}

/** Where a quoted run that opened at `start` with `close` as its closing character ends. */
function skipQuoted(text: string, start: number, close: string): number {
  let position = start + 1;
  for (;;) {
    const end = text.indexOf(close, position);
    if (end === -1) return text.length;
    // A doubled closing quote is an escaped quote inside the literal (not for [brackets]).
    if (close !== "]" && text[end + 1] === close) {
      position = end + 2;
      continue;
    }
    return end + 1;
  }
}

function isWordStart(character: string): boolean {
  return /[A-Za-z_]/.test(character) || character.charCodeAt(0) >= 0x80;
}

function isWordPart(character: string): boolean {
  return /[A-Za-z0-9_$]/.test(character) || character.charCodeAt(0) >= 0x80;
}

const closingQuote: Readonly<Record<string, string>> = { "'": "'", '"': '"', "`": "`", "[": "]" };

/** The tokens of `text`: bare words (keywords and unquoted names, upper-cased) and everything else. */
export function sqlTokens(text: string): Token[] {
  const tokens: Token[] = [];
  let position = skipBlank(text, 0);
  while (position < text.length) {
    const character = text[position]!;
    const close = closingQuote[character];
    if (close !== undefined) {
      const end = skipQuoted(text, position, close);
      tokens.push({ kind: "other", text: text.slice(position, end) });
      position = end;
    } else if (isWordStart(character)) {
      let end = position + 1;
      while (end < text.length && isWordPart(text[end]!)) end++;
      tokens.push({ kind: "word", text: text.slice(position, end).toUpperCase() });
      position = end;
    } else {
      tokens.push({ kind: "other", text: character });
      position++;
    }
    position = skipBlank(text, position);
  }
  return tokens;
}

/**
 * True when the CREATE TABLE text declares a foreign key as `INITIALLY DEFERRED` (the only way a
 * constraint becomes deferred). A column literally named `initially` typed `deferred` would also
 * match; refusing that odd table is the safe side of the error.
 */
export function hasDeferredForeignKey(createTableSql: string): boolean {
  const tokens = sqlTokens(createTableSql);
  for (let i = 0; i + 1 < tokens.length; i++) {
    const first = tokens[i]!;
    const second = tokens[i + 1]!;
    if (
      first.kind === "word" &&
      first.text === "INITIALLY" &&
      second.kind === "word" &&
      second.text === "DEFERRED"
    ) {
      return true;
    }
  }
  return false;
}

/** A name quoted as an SQL identifier, safe for any text. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
