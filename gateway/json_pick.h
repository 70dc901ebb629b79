/* Several members of a small JSON object in one walk over it: a choice or a delta has a
 * handful of members and most of the names asked for are not there, so one pass with a
 * string compare a member beats a hash lookup a name. */
#ifndef SL_JSON_PICK_H
#define SL_JSON_PICK_H

#include <jansson.h>

/* out[i] = o's member names[i] (borrowed), or NULL where absent or o is not an object;
 * names ends with NULL and out has room for each name. */
void sl_json_pick(const json_t *o, const char *const *names, json_t **out);

#endif
