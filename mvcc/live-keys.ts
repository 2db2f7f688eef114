/**
 * The keys that are live at the current revision, in an order-statistic tree, so that a range's
 * `count` at the current revision costs O(log n) instead of a walk over every key of the range.
 *
 * etcd answers a Range with a limit by counting every key of the range at the read revision
 * (treeIndex.Revisions visits them all), so a paginated list of a 300k-key prefix costs more per
 * page the earlier the page starts. `count` = rank(high) - rank(low) over the live keys gives the
 * same number (etcd counts the keys live at the read revision, and the current revision's live keys
 * are exactly these) without the walk. Historical revisions still count by walking the index: a key
 * deleted or created after `rev` makes the current set wrong for them (see docs/mvcc.md).
 *
 * The tree is @js-sdsl/ordered-map's red-black tree with `enableIndex`, which keeps subtree sizes
 * so an iterator's `index` (its rank) is O(log n).
 */
import { OrderedMap } from '@js-sdsl/ordered-map';
import type { KeyRange } from './tree-index';

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class LiveKeys {
  private readonly tree = new OrderedMap<string, undefined>([], compareStrings, true);

  get size(): number {
    return this.tree.size();
  }

  add(latin1Key: string): void {
    this.tree.setElement(latin1Key, undefined);
  }

  delete(latin1Key: string): void {
    this.tree.eraseElementByKey(latin1Key);
  }

  has(latin1Key: string): boolean {
    return !this.tree.find(latin1Key).equals(this.tree.end());
  }

  clear(): void {
    this.tree.clear();
  }

  /** Number of live keys in the range, in O(log n). */
  count(range: KeyRange): number {
    if (range.high === undefined) return this.has(range.low) ? 1 : 0;
    if (range.high <= range.low) return 0;
    return this.rank(range.high) - this.rank(range.low);
  }

  /** Number of live keys strictly below `latin1Key`. */
  private rank(latin1Key: string): number {
    const it = this.tree.lowerBound(latin1Key);
    // end()'s `index` is size - 1 in js-sdsl, not size: past the last key every key is below.
    return it.equals(this.tree.end()) ? this.tree.size() : it.index;
  }
}
