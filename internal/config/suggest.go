package config

import "strings"

// suggest returns the known key an unknown name most likely meant, or "".
// A name equal once dots and case are ignored (bindAddress, DB.USER) wins;
// otherwise the closest key within an edit distance of 2. Current names are
// preferred to EFM's older ones, so "pingserverip" suggests ping.server.ip.
func suggest(name string, keys []keySpec) string {
	best, bestScore := "", 1<<30
	for _, k := range keys {
		dist := levenshtein(name, k.name)
		if squash(name) == squash(k.name) {
			dist = 0
		}
		if dist > 2 {
			continue
		}
		score := dist * 2 // even scores for current names, odd for aliases: current wins ties
		if k.status == alias {
			score++
		}
		if score < bestScore {
			best, bestScore = k.name, score
		}
	}
	return best
}

// squash lowercases s and drops dots, so EFM 2.0's camelCase names and
// mistyped dots compare equal to the dotted names.
func squash(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, ".", ""))
}

// levenshtein is the edit distance between a and b in bytes; names are ASCII.
// Long inputs are cut off early: only distances up to 2 matter.
func levenshtein(a, b string) int {
	if d := len(a) - len(b); d > 2 || d < -2 {
		return 3
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
