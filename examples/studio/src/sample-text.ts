/**
 * The sample training text: a ship's log in a fixed, plain style, unlike the novel the
 * default model has read, so a few dozen steps visibly move its loss and its samples.
 * Written for this app (no third-party text).
 */
const DAYS = [
  ['Monday', 'north-east', 'light', 'calm', 'mended the jib and scrubbed the deck'],
  ['Tuesday', 'east', 'fresh', 'a short swell', 'sighted two gulls and a floating spar'],
  ['Wednesday', 'south-east', 'strong', 'rough', 'took in the topsail and pumped the bilge'],
  ['Thursday', 'south', 'moderate', 'a long swell', 'caught four mackerel for supper'],
  ['Friday', 'south-west', 'gentle', 'smooth', 'painted the boat and checked the water casks'],
  ['Saturday', 'west', 'fresh', 'choppy', 'sighted a steamer to leeward, bound north'],
  ['Sunday', 'north-west', 'light', 'calm', 'rested, read aloud and wrote letters home'],
];

/** About 4,000 characters of log entries (three weeks). */
export const SAMPLE_TEXT = Array.from({ length: 3 }, (_, week) =>
  DAYS.map(
    ([day, wind, force, sea, work], d) =>
      `Log of the sloop Mary Ann, week ${week + 1}, ${day}. Wind ${wind}, ${force}. Sea ${sea}. Course held ${(d * 40 + week * 15) % 360} degrees. The crew ${work}. All well on board.`,
  ).join('\n'),
).join('\n\n');
