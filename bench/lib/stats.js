export function median (values) {
  const v = values.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

/** Percentile (0–100) of a sorted typed array, nearest rank. */
export function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]
}

export function concatSorted (arrays) {
  let n = 0
  for (const a of arrays) n += a.length
  const out = new Float64Array(n)
  let i = 0
  for (const a of arrays) {
    out.set(a, i)
    i += a.length
  }
  return out.sort()
}
