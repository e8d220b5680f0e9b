const char *greeting(void) {
  int unused; /* -Wall says so: a diagnostic for the examples to show */
  return "hello from a Kiln worker";
}
