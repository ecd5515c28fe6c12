/** Deterministic entry content for the crash test: the length and bytes depend on the index. */
export function crashEntryData(index: number): Uint8Array {
  const data = new Uint8Array(20 + (index % 300));
  for (let i = 0; i < data.length; i++) data[i] = (index * 131 + i * 7) & 0xff;
  return data;
}
