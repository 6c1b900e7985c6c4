/** The program's version, shown in reports and stored in every run record. */
export const VERSION = "0.1.0";
