// Bounded quoting of untrusted text in error messages: a CSV line, cell or header can be megabytes long,
// and an error message must stay readable and must not copy an institution's data in bulk into logs.

/** At most `max` characters of `text`; a longer text is cut and says how long it was. */
export function excerpt(text: string, max = 200): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}… (${text.length} characters)`;
}

/** `text` excerpted and in double quotes, for naming a cell, a column or a line in a message. */
export function quoted(text: string, max = 200): string {
  return `"${excerpt(text, max)}"`;
}
