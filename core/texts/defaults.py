"""Built-in message templates, written as a clinic writes to its patients: short, polite,
saying what to reply. A clinic overrides any (kind, language) through
`PUT /v1/clinics/{id}/templates/{kind}/{language}`; care memos are kinds `memo.<code>`
(see memos.py).

Variables are `{name}` (a literal brace is `{{` / `}}`); VARIABLES says what each holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.texts.memos import DEFAULT_MEMOS

VARIABLES: dict[str, str] = {
    "patient_first_name": "the first name of whom the message is addressed to (a child's guardian)",
    "patient_name": "the full name of the patient the visit is for",
    "clinic": "the clinic's name",
    "address": "the clinic's address",
    "phone": "the clinic's phone",
    "map_link": "a map link to the clinic's address",
    "doctor": "the doctor's name",
    "service": "the service booked (the catalogue's name when it matches)",
    "date": "the visit's date in the language, clinic timezone (5 декабря)",
    "weekday": "the visit's weekday (пятница)",
    "time": "the visit's time, clinic timezone (10:30)",
    "link": "the patient's page for this visit: details, confirm, calendar, memo",
    "memo": "the before-visit care memo of the service (empty if it has none)",
    "review_link": "the clinic's public review page",
    "feedback_link": "the feedback form for this visit",
    "score": "the patient's answer 0-10 to the survey",
    "offer": "campaigns: the clinic's offer (campaign settings)",
    "booking_link": "campaigns: the clinic's online booking page (campaign settings)",
    "last_visit": "recall: the date of the patient's last visit (5 мая)",
    "points": "bonus: the patient's bonus balance",
}

# Channel limits: WhatsApp interactive bodies and template parameters take 1024 characters,
# reply-button titles 20; an SMS is at most 1600 characters (10 segments); a robot call's
# prompt is kept short.
LIMIT_MESSAGE = 1024
LIMIT_MEMO = 1600
LIMIT_BUTTON = 20
LIMIT_VOICE = 500


@dataclass(frozen=True)
class Kind:
    name: str
    limit: int
    about: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("booking_notice", LIMIT_MEMO, "sent when a visit is booked (the before-visit memo follows in {memo})"),
        Kind("reschedule_notice", LIMIT_MESSAGE, "sent when a visit moves to a new time"),
        Kind("reminder", LIMIT_MESSAGE, "the day-before ask to confirm (with the Confirm / Can't come buttons)"),
        Kind("reask", LIMIT_MESSAGE, "the ask repeated when the patient has not answered"),
        Kind("voice_prompt", LIMIT_VOICE, "what the robot call says (press 1 / press 2)"),
        Kind("survey", LIMIT_MESSAGE, "after the visit: 0-10 how likely to recommend"),
        Kind("review_link", LIMIT_MESSAGE, "answer to 9-10: the public review link"),
        Kind("thanks", LIMIT_MESSAGE, "answer to 7-8 (review_link_to: promoters)"),
        Kind("thanks_review", LIMIT_MESSAGE, "answer to 7-8 (review_link_to: everyone)"),
        Kind("feedback_form", LIMIT_MESSAGE, "answer to 0-6: the internal feedback form (promoters)"),
        Kind("feedback_form_review", LIMIT_MESSAGE, "answer to 0-6 (review_link_to: everyone)"),
        Kind("feedback_received", LIMIT_MESSAGE, "thanks after the feedback form was sent"),
        Kind("lab_results_ask", LIMIT_MESSAGE, "treatment plan: are the lab test results ready?"),
        Kind("waitlist_offer", LIMIT_MESSAGE, "waiting list: a slot freed up, does the patient want it? (Yes / No)"),
        Kind("waitlist_taken", LIMIT_MESSAGE, "waiting list: sorry, someone took the slot first; still on the list"),
        Kind("button.waitlist_take", LIMIT_BUTTON, "waiting list button: take the freed slot"),
        Kind("button.waitlist_skip", LIMIT_BUTTON, "waiting list button: not this time"),
        Kind("button.confirm", LIMIT_BUTTON, "button: confirm the visit"),
        Kind("button.decline", LIMIT_BUTTON, "button: cannot come"),
        Kind("button.nps_10", LIMIT_BUTTON, "survey button: 10"),
        Kind("button.nps_8", LIMIT_BUTTON, "survey button: 8"),
        Kind("button.nps_4", LIMIT_BUTTON, "survey button: 4"),
        Kind("button.lab_ready", LIMIT_BUTTON, "treatment plan button: lab results are ready"),
        Kind("button.lab_not_ready", LIMIT_BUTTON, "treatment plan button: not yet"),
        Kind("campaign.recall.invite", LIMIT_MESSAGE, "recall: last visit months ago, invitation with the offer"),
        Kind("campaign.bonus.invite", LIMIT_MESSAGE, "bonus: the balance reached the threshold, spend it"),
        Kind("campaign.birthday.invite", LIMIT_MESSAGE, "birthday greeting with the offer"),
        Kind("campaign.birthday.invite_child", LIMIT_MESSAGE, "birthday greeting of a child, to the guardian"),
        Kind("campaign.recall.invite_child", LIMIT_MESSAGE, "recall of a child, to the guardian"),
        Kind("campaign.reask", LIMIT_MESSAGE, "any campaign: the invitation asked once more"),
        Kind("campaign.accepted_link", LIMIT_MESSAGE, "campaign «yes» when the clinic has a booking link"),
        Kind("campaign.accepted_call", LIMIT_MESSAGE, "campaign «yes»: the clinic will call to book"),
        Kind("button.campaign_yes", LIMIT_BUTTON, "campaign button: yes, book me"),
        Kind("button.campaign_no", LIMIT_BUTTON, "campaign button: no, thanks"),
    )
}
MEMO_PREFIX = "memo."

TEMPLATES: dict[str, dict[str, str]] = {
    "booking_notice": {
        "ru": "Здравствуйте, {patient_first_name}! Вы записаны в {clinic}: {service}, врач {doctor}, "
        "{date} ({weekday}) в {time}.\nАдрес: {address}. Телефон: {phone}.\n"
        "Подробности и подтверждение: {link}\n\n{memo}",
        "uk": "Добрий день, {patient_first_name}! Ви записані до {clinic}: {service}, лікар {doctor}, "
        "{date} ({weekday}) о {time}.\nАдреса: {address}. Телефон: {phone}.\n"
        "Деталі та підтвердження: {link}\n\n{memo}",
        "en": "Hello {patient_first_name}, you are booked at {clinic}: {service} with {doctor}, "
        "{weekday}, {date} at {time}.\nAddress: {address}. Phone: {phone}.\n"
        "Details and confirmation: {link}\n\n{memo}",
    },
    "reschedule_notice": {
        "ru": "Здравствуйте, {patient_first_name}! Ваш визит в {clinic} перенесён: {service}, врач {doctor}, "
        "{date} ({weekday}) в {time}. Адрес: {address}. Подробности: {link}",
        "uk": "Добрий день, {patient_first_name}! Ваш візит до {clinic} перенесено: {service}, лікар {doctor}, "
        "{date} ({weekday}) о {time}. Адреса: {address}. Деталі: {link}",
        "en": "Hello {patient_first_name}, your visit to {clinic} has moved: {service} with {doctor}, "
        "{weekday}, {date} at {time}. Address: {address}. Details: {link}",
    },
    "reminder": {
        "ru": "Здравствуйте, {patient_first_name}! Напоминаем о визите в {clinic}: {date} в {time}, "
        "врач {doctor}. Вы придёте? Ответьте «Да» или «Нет», если не сможете. {link}",
        "uk": "Добрий день, {patient_first_name}! Нагадуємо про візит до {clinic}: {date} о {time}, "
        "лікар {doctor}. Ви прийдете? Відповідайте «Так» або «Ні», якщо не зможете. {link}",
        "en": "Hello {patient_first_name}, a reminder of your visit to {clinic}: {date} at {time} "
        "with {doctor}. Will you come? Reply YES, or NO if you cannot. {link}",
    },
    "reask": {
        "ru": "{patient_first_name}, пожалуйста, подтвердите визит {date} в {time} ({clinic}): "
        "ответьте «Да» или «Нет».",
        "uk": "{patient_first_name}, будь ласка, підтвердіть візит {date} о {time} ({clinic}): "
        "відповідайте «Так» або «Ні».",
        "en": "{patient_first_name}, please confirm your visit on {date} at {time} ({clinic}): reply YES or NO.",
    },
    "voice_prompt": {
        "ru": "Здравствуйте! Это {clinic}. Вы записаны на {date} в {time}. "
        "Если придёте, нажмите 1. Если не сможете прийти, нажмите 2.",
        "uk": "Добрий день! Це {clinic}. Ви записані на {date} о {time}. "
        "Якщо прийдете, натисніть 1. Якщо не зможете прийти, натисніть 2.",
        "en": "Hello, this is {clinic}. You have a visit on {date} at {time}. "
        "Press 1 to confirm, press 2 if you cannot come.",
    },
    "survey": {
        "ru": "Спасибо, что были у нас в {clinic}! Насколько вероятно, что вы порекомендуете нас друзьям? "
        "Ответьте числом от 0 до 10. Или заполните короткую анкету: {feedback_link}",
        "uk": "Дякуємо, що завітали до {clinic}! Наскільки ймовірно, що ви порекомендуєте нас друзям? "
        "Відповідайте числом від 0 до 10. Або заповніть коротку анкету: {feedback_link}",
        "en": "Thank you for visiting {clinic}! How likely are you to recommend us to a friend? "
        "Reply with a number from 0 to 10, or fill in a short form: {feedback_link}",
    },
    "review_link": {
        "ru": "Спасибо за высокую оценку! Нам очень поможет ваш отзыв: {review_link}",
        "uk": "Дякуємо за високу оцінку! Нам дуже допоможе ваш відгук: {review_link}",
        "en": "Thank you! It would help us a lot if you shared it: {review_link}",
    },
    "thanks": {
        "ru": "Спасибо за оценку! Будем рады видеть вас снова в {clinic}.",
        "uk": "Дякуємо за оцінку! Будемо раді бачити вас знову в {clinic}.",
        "en": "Thank you for your feedback! We look forward to seeing you again at {clinic}.",
    },
    "thanks_review": {
        "ru": "Спасибо за оценку! Если захотите, оставьте отзыв о {clinic}: {review_link}",
        "uk": "Дякуємо за оцінку! Якщо бажаєте, залиште відгук про {clinic}: {review_link}",
        "en": "Thank you for your feedback! If you wish, you can review {clinic} here: {review_link}",
    },
    "feedback_form": {
        "ru": "Нам жаль, что не всё было идеально. Расскажите, пожалуйста, что пошло не так, "
        "директор клиники читает каждый ответ: {feedback_link}",
        "uk": "Нам шкода, що не все було ідеально. Розкажіть, будь ласка, що пішло не так, "
        "директор клініки читає кожну відповідь: {feedback_link}",
        "en": "We are sorry it was not perfect. Please tell us what went wrong, "
        "the clinic director reads every answer: {feedback_link}",
    },
    "feedback_form_review": {
        "ru": "Нам жаль, что не всё было идеально. Расскажите, пожалуйста, что пошло не так, "
        "директор клиники читает каждый ответ: {feedback_link}\nОставить публичный отзыв: {review_link}",
        "uk": "Нам шкода, що не все було ідеально. Розкажіть, будь ласка, що пішло не так, "
        "директор клініки читає кожну відповідь: {feedback_link}\nЗалишити публічний відгук: {review_link}",
        "en": "We are sorry it was not perfect. Please tell us what went wrong, "
        "the clinic director reads every answer: {feedback_link}\nTo leave a public review: {review_link}",
    },
    "feedback_received": {
        "ru": "Спасибо, ваш отзыв получен. Директор клиники прочитает его лично.",
        "uk": "Дякуємо, ваш відгук отримано. Директор клініки прочитає його особисто.",
        "en": "Thank you, we have your feedback. The clinic director will read it personally.",
    },
    "lab_results_ask": {
        "ru": "Здравствуйте, {patient_first_name}! Готовы ли результаты ваших анализов? "
        "Ответьте «Да», когда будут готовы, и мы запишем вас на следующий визит в {clinic}.",
        "uk": "Добрий день, {patient_first_name}! Чи готові результати ваших аналізів? "
        "Відповідайте «Так», коли будуть готові, і ми запишемо вас на наступний візит до {clinic}.",
        "en": "Hello {patient_first_name}, are your lab test results ready? "
        "Reply YES when they are, and we will book your next visit at {clinic}.",
    },
    "campaign.recall.invite": {
        "ru": "Здравствуйте, {patient_first_name}! Ваш последний визит в {clinic} был {last_visit}. "
        "Пора на профилактический осмотр и профессиональную гигиену. {offer}\n"
        "Записать вас? Ответьте «Да» или «Нет».",
        "uk": "Добрий день, {patient_first_name}! Ваш останній візит до {clinic} був {last_visit}. "
        "Час на профілактичний огляд і професійну гігієну. {offer}\n"
        "Записати вас? Відповідайте «Так» або «Ні».",
        "en": "Hello {patient_first_name}, your last visit to {clinic} was on {last_visit}. "
        "It is time for a check-up and a professional cleaning. {offer}\n"
        "Shall we book you in? Reply YES or NO.",
    },
    "campaign.recall.invite_child": {
        "ru": "Здравствуйте, {patient_first_name}! Последний визит {patient_name} в {clinic} был {last_visit}. "
        "Пора на профилактический осмотр. {offer}\nЗаписать ребёнка? Ответьте «Да» или «Нет».",
        "uk": "Добрий день, {patient_first_name}! Останній візит {patient_name} до {clinic} був {last_visit}. "
        "Час на профілактичний огляд. {offer}\nЗаписати дитину? Відповідайте «Так» або «Ні».",
        "en": "Hello {patient_first_name}, {patient_name}'s last visit to {clinic} was on {last_visit}. "
        "It is time for a check-up. {offer}\nShall we book your child in? Reply YES or NO.",
    },
    "campaign.bonus.invite": {
        "ru": "Здравствуйте, {patient_first_name}! На вашем бонусном счёте в {clinic} уже {points} баллов: "
        "ими можно оплатить часть лечения. {offer}\nЗаписать вас? Ответьте «Да» или «Нет».",
        "uk": "Добрий день, {patient_first_name}! На вашому бонусному рахунку в {clinic} вже {points} балів: "
        "ними можна оплатити частину лікування. {offer}\nЗаписати вас? Відповідайте «Так» або «Ні».",
        "en": "Hello {patient_first_name}, you have {points} bonus points at {clinic}: "
        "use them to pay for part of your treatment. {offer}\nShall we book you in? Reply YES or NO.",
    },
    "campaign.birthday.invite": {
        "ru": "{patient_first_name}, {clinic} поздравляет вас с днём рождения! Здоровья и красивой улыбки. "
        "{offer}\nХотите записаться? Ответьте «Да» или «Нет».",
        "uk": "{patient_first_name}, {clinic} вітає вас із днем народження! Здоров'я та гарної усмішки. "
        "{offer}\nБажаєте записатися? Відповідайте «Так» або «Ні».",
        "en": "{patient_first_name}, happy birthday from {clinic}! Wishing you health and a bright smile. "
        "{offer}\nWould you like to book a visit? Reply YES or NO.",
    },
    "campaign.birthday.invite_child": {
        "ru": "{patient_first_name}, {clinic} поздравляет {patient_name} с днём рождения! Здоровья и красивой улыбки. "
        "{offer}\nХотите записать ребёнка? Ответьте «Да» или «Нет».",
        "uk": "{patient_first_name}, {clinic} вітає {patient_name} з днем народження! Здоров'я та гарної усмішки. "
        "{offer}\nБажаєте записати дитину? Відповідайте «Так» або «Ні».",
        "en": "{patient_first_name}, {clinic} wishes {patient_name} a happy birthday! Health and a bright smile. "
        "{offer}\nWould you like to book a visit for your child? Reply YES or NO.",
    },
    "campaign.reask": {
        "ru": "{patient_first_name}, напоминаем о нашем предложении. {offer}\n"
        "Записать вас в {clinic}? Ответьте «Да» или «Нет».",
        "uk": "{patient_first_name}, нагадуємо про нашу пропозицію. {offer}\n"
        "Записати вас до {clinic}? Відповідайте «Так» або «Ні».",
        "en": "{patient_first_name}, a reminder of our offer. {offer}\n"
        "Shall we book you in at {clinic}? Reply YES or NO.",
    },
    "campaign.accepted_link": {
        "ru": "Спасибо! Выберите удобное время онлайн: {booking_link}\nИли позвоните нам: {phone}.",
        "uk": "Дякуємо! Оберіть зручний час онлайн: {booking_link}\nАбо зателефонуйте нам: {phone}.",
        "en": "Thank you! Pick a time that suits you online: {booking_link}\nOr call us: {phone}.",
    },
    "campaign.accepted_call": {
        "ru": "Спасибо! Администратор {clinic} свяжется с вами, чтобы подобрать удобное время.",
        "uk": "Дякуємо! Адміністратор {clinic} зв'яжеться з вами, щоб підібрати зручний час.",
        "en": "Thank you! The {clinic} front desk will call you to find a convenient time.",
    },
    "button.campaign_yes": {"ru": "Да, записаться", "uk": "Так, записатися", "en": "Yes, book me"},
    "button.campaign_no": {"ru": "Нет, спасибо", "uk": "Ні, дякую", "en": "No, thanks"},
    "waitlist_offer": {
        "ru": "Здравствуйте, {patient_first_name}! В {clinic} освободилось время: {date} ({weekday}) в {time}, "
        "врач {doctor}, {service}. Хотите записаться? Ответьте «Да» — запишем того, кто ответит первым, "
        "или «Нет», если не подходит (вы останетесь в листе ожидания).",
        "uk": "Добрий день, {patient_first_name}! У {clinic} звільнився час: {date} ({weekday}) о {time}, "
        "лікар {doctor}, {service}. Бажаєте записатися? Відповідайте «Так» — запишемо того, хто відповість "
        "першим, або «Ні», якщо не підходить (ви залишитеся в листі очікування).",
        "en": "Hello {patient_first_name}, a time has freed up at {clinic}: {weekday}, {date} at {time} "
        "with {doctor}, {service}. Would you like it? Reply YES (the first to answer gets it), "
        "or NO if it does not suit you (you stay on the waiting list).",
    },
    "waitlist_taken": {
        "ru": "{patient_first_name}, к сожалению, время {date} в {time} уже заняли. Вы остаётесь в листе "
        "ожидания, и мы напишем, как только освободится другое. {clinic}, {phone}",
        "uk": "{patient_first_name}, на жаль, час {date} о {time} вже зайняли. Ви залишаєтеся в листі "
        "очікування, і ми напишемо, щойно звільниться інший. {clinic}, {phone}",
        "en": "{patient_first_name}, sorry, the time {date} at {time} has already been taken. You stay on "
        "the waiting list and we will write as soon as another one frees up. {clinic}, {phone}",
    },
    "button.waitlist_take": {"ru": "Да, запишите", "uk": "Так, запишіть", "en": "Yes, book me"},
    "button.waitlist_skip": {"ru": "Не подходит", "uk": "Не підходить", "en": "Not this time"},
    "button.confirm": {"ru": "Подтверждаю", "uk": "Підтверджую", "en": "Confirm"},
    "button.decline": {"ru": "Не смогу прийти", "uk": "Не зможу прийти", "en": "Can't come"},
    "button.nps_10": {"ru": "10 – отлично", "uk": "10 – чудово", "en": "10 – excellent"},
    "button.nps_8": {"ru": "8 – хорошо", "uk": "8 – добре", "en": "8 – good"},
    "button.nps_4": {"ru": "4 – плохо", "uk": "4 – погано", "en": "4 – poor"},
    "button.lab_ready": {"ru": "Результаты готовы", "uk": "Результати готові", "en": "Results are ready"},
    "button.lab_not_ready": {"ru": "Ещё нет", "uk": "Ще ні", "en": "Not yet"},
}


def is_memo(kind: str) -> bool:
    return kind.startswith(MEMO_PREFIX)


def default_text(kind: str, language: str) -> str | None:
    if is_memo(kind):
        memo = DEFAULT_MEMOS.get(kind[len(MEMO_PREFIX) :])
        return memo.text.get(language) if memo else None
    return TEMPLATES.get(kind, {}).get(language)


def limit_of(kind: str) -> int:
    if is_memo(kind):
        return LIMIT_MEMO
    return KINDS[kind].limit if kind in KINDS else LIMIT_MESSAGE


def default_kinds() -> list[str]:
    return [*KINDS, *(MEMO_PREFIX + code for code in DEFAULT_MEMOS)]
