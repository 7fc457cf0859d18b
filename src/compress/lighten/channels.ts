import { EdgektError } from '../../core/errors.js';

type Rule = { kind: 'pinned'; size: number } | { kind: 'derived'; from: number; multiplier: number } | { kind: 'scaled'; teacher: number };

/**
 * Channel groups of the student: tensors that must have the same channel count (a layer and the
 * pass-through layers after it, every input of an Add). Union-find over groups; a group's size is
 * pinned (the model input), derived (depthwise multiplier) or the teacher's count × width.
 */
export class ChannelGroups {
  private parent: number[] = [];
  private rules: Rule[] = [];

  constructor(private readonly scale: (teacherChannels: number) => number) {}

  private add(rule: Rule): number {
    this.parent.push(this.parent.length);
    this.rules.push(rule);
    return this.parent.length - 1;
  }
  pinned(size: number): number {
    return this.add({ kind: 'pinned', size });
  }
  scaled(teacher: number): number {
    return this.add({ kind: 'scaled', teacher });
  }
  derived(from: number, multiplier: number): number {
    return multiplier === 1 ? this.find(from) : this.add({ kind: 'derived', from, multiplier });
  }

  find(g: number): number {
    let r = g;
    while (this.parent[r] !== r) r = this.parent[r]!;
    while (this.parent[g] !== r) {
      const next = this.parent[g]!;
      this.parent[g] = r;
      g = next;
    }
    return r;
  }

  /** Joins groups that meet at an Add. The most constrained rule wins (pinned > derived > scaled). */
  union(groups: number[], where: string): number {
    const roots = [...new Set(groups.map((g) => this.find(g)))];
    const rank = (r: number) => ({ pinned: 0, derived: 1, scaled: 2 })[this.rules[r]!.kind];
    roots.sort((a, b) => rank(a) - rank(b));
    const keep = roots[0]!;
    for (const r of roots.slice(1)) {
      const a = this.rules[keep]!;
      const b = this.rules[r]!;
      if (a.kind !== 'scaled' && b.kind !== 'scaled' && this.size(keep) !== this.size(r)) {
        throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `${where}: residual branches with fixed, different channel counts (${this.size(keep)} vs ${this.size(r)})`);
      }
      this.parent[r] = keep;
    }
    return keep;
  }

  size(g: number): number {
    const rule = this.rules[this.find(g)]!;
    if (rule.kind === 'pinned') return rule.size;
    if (rule.kind === 'derived') return this.size(rule.from) * rule.multiplier;
    return this.scale(rule.teacher);
  }
}

/** Width scaling: round(c × w) to a multiple of `divisor`, at least min(minChannels, c), at least 1. */
export function scaleChannels(c: number, width: number, minChannels: number, divisor: number): number {
  const scaled = Math.round((c * width) / divisor) * divisor;
  return Math.max(1, Math.min(minChannels, c), scaled);
}
